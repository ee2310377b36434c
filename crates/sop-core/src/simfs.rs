//! A simulated file system that loses what was not synced: the test seam for power loss.
//!
//! Every file and folder lives in memory twice: as the process sees it, and as it would be
//! found after a power cut. A file's bytes become durable when the file is synced; a folder's
//! entries (files created, renamed, removed in it) when the folder is synced; everything at
//! [`FileSystem::sync_fs`]. [`SimFs::crash_at_sync`] makes the Nth sync fail (and every call
//! after it: the machine is off), and [`SimFs::crash_image`] "reboots" into what was durable.
//! The folder the file system is rooted at (and its ancestors) exist durably from the start.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::vfs::{FileHandle, FileSystem};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    File(u64),
    Dir,
}

#[derive(Clone, Debug, Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Clone, Debug, Default)]
struct Dir {
    current: BTreeMap<String, Entry>,
    durable: BTreeMap<String, Entry>,
}

#[derive(Debug, Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    dirs: HashMap<PathBuf, Dir>,
    next: u64,
    syncs: u64,
    reads: u64,
    crash_at: Option<u64>,
    crashed: bool,
}

/// The simulated file system (see the module docs).
#[derive(Clone, Debug)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

fn dead() -> io::Error {
    io::Error::from_raw_os_error(5)
}

fn not_found(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", p.display()),
    )
}

fn split(p: &Path) -> io::Result<(PathBuf, String)> {
    let parent = p.parent().ok_or_else(|| not_found(p))?.to_path_buf();
    let name = p
        .file_name()
        .ok_or_else(|| not_found(p))?
        .to_string_lossy()
        .into_owned();
    Ok((parent, name))
}

impl State {
    fn alive(&self) -> io::Result<()> {
        if self.crashed { Err(dead()) } else { Ok(()) }
    }

    /// Counts a sync; the one the crash is set at does not happen and turns the machine off.
    fn sync_point(&mut self) -> io::Result<()> {
        self.alive()?;
        self.syncs += 1;
        if self.crash_at == Some(self.syncs) {
            self.crashed = true;
            return Err(dead());
        }
        Ok(())
    }

    fn lookup(&self, p: &Path) -> Option<Entry> {
        if self.dirs.contains_key(p) && p.parent().is_none() {
            return Some(Entry::Dir);
        }
        let (parent, name) = split(p).ok()?;
        self.dirs.get(&parent)?.current.get(&name).copied()
    }

    fn mkdirs(&mut self, p: &Path, durable: bool) {
        let mut chain: Vec<PathBuf> = p.ancestors().map(Path::to_path_buf).collect();
        chain.reverse();
        for d in chain {
            if !self.dirs.contains_key(&d) {
                self.dirs.insert(d.clone(), Dir::default());
                if let Ok((parent, name)) = split(&d)
                    && let Some(pd) = self.dirs.get_mut(&parent)
                {
                    pd.current.insert(name.clone(), Entry::Dir);
                    if durable {
                        pd.durable.insert(name, Entry::Dir);
                    }
                }
            }
        }
    }

    fn remove_tree(&mut self, p: &Path) {
        let under: Vec<PathBuf> = self
            .dirs
            .keys()
            .filter(|d| d.starts_with(p))
            .cloned()
            .collect();
        for d in under {
            self.dirs.remove(&d);
        }
    }

    /// What a reboot finds: durable entries reachable from the root, with durable bytes. With
    /// `mix`, each unsynced change may have reached the disk anyway: a folder entry is taken as
    /// it is now or as it was at the last sync, and a file's bytes are the synced ones, the
    /// current ones, or a mix of the two in 4 KiB pages (a torn write), chosen by `mix`.
    fn image(&self) -> State {
        self.image_with(&mut |_| 0)
    }

    fn image_with(&self, mix: &mut dyn FnMut(u32) -> u32) -> State {
        let mut out = State {
            next: self.next,
            ..State::default()
        };
        let roots: Vec<PathBuf> = self
            .dirs
            .keys()
            .filter(|d| d.parent().is_none())
            .cloned()
            .collect();
        let mut stack = roots;
        while let Some(d) = stack.pop() {
            let Some(dir) = self.dirs.get(&d) else {
                continue;
            };
            let mut kept = Dir::default();
            let mut names: Vec<&String> = dir.durable.keys().chain(dir.current.keys()).collect();
            names.sort();
            names.dedup();
            for name in names {
                let choice = if dir.durable.get(name) == dir.current.get(name) {
                    dir.durable.get(name)
                } else if mix(2) == 1 {
                    dir.current.get(name)
                } else {
                    dir.durable.get(name)
                };
                let Some(e) = choice else { continue };
                match e {
                    Entry::Dir => {
                        if self.dirs.contains_key(&d.join(name)) {
                            kept.current.insert(name.clone(), Entry::Dir);
                            stack.push(d.join(name));
                        }
                    }
                    Entry::File(ino) => {
                        let bytes = match self.inodes.get(ino) {
                            None => Vec::new(),
                            Some(i) if i.current == i.durable => i.durable.clone(),
                            Some(i) => match mix(3) {
                                0 => i.durable.clone(),
                                1 => i.current.clone(),
                                _ => torn(&i.durable, &i.current, mix),
                            },
                        };
                        out.inodes.insert(
                            *ino,
                            Inode {
                                current: bytes.clone(),
                                durable: bytes,
                            },
                        );
                        kept.current.insert(name.clone(), Entry::File(*ino));
                    }
                }
            }
            kept.durable = kept.current.clone();
            out.dirs.insert(d, kept);
        }
        out
    }
}

/// Synced bytes with some 4 KiB pages of the current bytes, and the length of either.
fn torn(durable: &[u8], current: &[u8], mix: &mut dyn FnMut(u32) -> u32) -> Vec<u8> {
    let len = if mix(2) == 1 {
        current.len()
    } else {
        durable.len()
    };
    let mut out = vec![0u8; len];
    for (page, chunk) in out.chunks_mut(4096).enumerate() {
        let from = if mix(2) == 1 { current } else { durable };
        let start = page * 4096;
        for (j, b) in chunk.iter_mut().enumerate() {
            *b = from.get(start + j).copied().unwrap_or(0);
        }
    }
    out
}

impl SimFs {
    /// A file system where `root` (and its ancestors) already exist durably.
    #[must_use]
    pub fn new(root: &Path) -> Self {
        let mut st = State::default();
        st.mkdirs(root, true);
        SimFs {
            state: Arc::new(Mutex::new(st)),
        }
    }

    /// Makes the `n`th sync from now (1-based) fail and turn the machine off.
    pub fn crash_at_sync(&self, n: u64) {
        let mut st = self.state.lock();
        st.crash_at = Some(st.syncs + n);
    }

    /// Syncs done so far.
    #[must_use]
    pub fn syncs(&self) -> u64 {
        self.state.lock().syncs
    }

    /// Reads (`read_at` calls) done so far: how often a reader went to the "disk".
    #[must_use]
    pub fn reads(&self) -> u64 {
        self.state.lock().reads
    }

    /// Whether the crash happened.
    #[must_use]
    pub fn crashed(&self) -> bool {
        self.state.lock().crashed
    }

    /// A new file system holding exactly what was durable: the disk after a power cut.
    #[must_use]
    pub fn crash_image(&self) -> SimFs {
        SimFs {
            state: Arc::new(Mutex::new(self.state.lock().image())),
        }
    }

    /// As [`SimFs::crash_image`], but some unsynced changes reached the disk anyway (the disk
    /// wrote back part of its cache before the cut), including torn 4 KiB pages; which ones is
    /// decided by `seed`.
    #[must_use]
    pub fn crash_image_mixed(&self, seed: u64) -> SimFs {
        let mut x = seed | 1;
        let mut mix = |n: u32| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            u32::try_from(x % u64::from(n.max(1))).unwrap_or(0)
        };
        SimFs {
            state: Arc::new(Mutex::new(self.state.lock().image_with(&mut mix))),
        }
    }
}

struct SimFile {
    state: Arc<Mutex<State>>,
    ino: u64,
}

impl FileHandle for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut st = self.state.lock();
        st.alive()?;
        st.reads += 1;
        let data = &st.inodes.get(&self.ino).ok_or_else(dead)?.current;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.state.lock();
        st.alive()?;
        let file = &mut st.inodes.get_mut(&self.ino).ok_or_else(dead)?.current;
        let start = usize::try_from(offset).map_err(|_| io::Error::other("offset"))?;
        if file.len() < start + data.len() {
            file.resize(start + data.len(), 0);
        }
        file[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn size(&self) -> io::Result<u64> {
        let st = self.state.lock();
        st.alive()?;
        Ok(st.inodes.get(&self.ino).ok_or_else(dead)?.current.len() as u64)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.state.lock();
        st.alive()?;
        let len = usize::try_from(len).map_err(|_| io::Error::other("length"))?;
        st.inodes
            .get_mut(&self.ino)
            .ok_or_else(dead)?
            .current
            .resize(len, 0);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        let mut st = self.state.lock();
        st.sync_point()?;
        let inode = st.inodes.get_mut(&self.ino).ok_or_else(dead)?;
        inode.durable = inode.current.clone();
        Ok(())
    }
}

impl FileSystem for SimFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn FileHandle>> {
        let mut st = self.state.lock();
        st.alive()?;
        let ino = match st.lookup(path) {
            Some(Entry::File(ino)) => ino,
            Some(Entry::Dir) => return Err(io::Error::other("is a folder")),
            None if !create => return Err(not_found(path)),
            None => {
                let (parent, name) = split(path)?;
                if !st.dirs.contains_key(&parent) {
                    return Err(not_found(&parent));
                }
                st.next += 1;
                let ino = st.next;
                st.inodes.insert(ino, Inode::default());
                if let Some(d) = st.dirs.get_mut(&parent) {
                    d.current.insert(name, Entry::File(ino));
                }
                ino
            }
        };
        Ok(Box::new(SimFile {
            state: Arc::clone(&self.state),
            ino,
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.alive()?;
        let (fp, fname) = split(from)?;
        let (tp, tname) = split(to)?;
        if !st.dirs.contains_key(&tp) {
            return Err(not_found(&tp));
        }
        let e = st
            .dirs
            .get_mut(&fp)
            .and_then(|d| d.current.remove(&fname))
            .ok_or_else(|| not_found(from))?;
        if let Some(d) = st.dirs.get_mut(&tp) {
            d.current.insert(tname, e);
        }
        Ok(())
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.alive()?;
        let (parent, name) = split(path)?;
        match st
            .dirs
            .get_mut(&parent)
            .and_then(|d| d.current.remove(&name))
        {
            Some(_) => Ok(()),
            None => Err(not_found(path)),
        }
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.alive()?;
        st.mkdirs(path, false);
        Ok(())
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.alive()?;
        let (parent, name) = split(path)?;
        if st
            .dirs
            .get_mut(&parent)
            .and_then(|d| d.current.remove(&name))
            .is_none()
        {
            return Err(not_found(path));
        }
        st.remove_tree(path);
        Ok(())
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let st = self.state.lock();
        st.alive()?;
        let d = st.dirs.get(path).ok_or_else(|| not_found(path))?;
        Ok(d.current.keys().cloned().collect())
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.sync_point()?;
        let d = st.dirs.get_mut(path).ok_or_else(|| not_found(path))?;
        d.durable = d.current.clone();
        Ok(())
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        let st = self.state.lock();
        st.alive()?;
        Ok(st.lookup(path).is_some() || st.dirs.contains_key(path))
    }
    fn sync_fs(&self, _path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.sync_point()?;
        for i in st.inodes.values_mut() {
            i.durable = i.current.clone();
        }
        for d in st.dirs.values_mut() {
            d.durable = d.current.clone();
        }
        Ok(())
    }
    fn sync_count(&self) -> u64 {
        self.state.lock().syncs
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::vfs::{read_file, write_file_atomic};

    #[test]
    fn only_synced_bytes_and_entries_survive() {
        let root = Path::new("/r");
        let fs = SimFs::new(root);
        fs.create_dir_all(&root.join("d")).unwrap();
        fs.sync_dir(root).unwrap();
        let a = fs.open(&root.join("d/a"), true).unwrap();
        a.write_at(b"one", 0).unwrap();
        a.sync().unwrap();
        // The file's bytes are durable, its name is not (folder not synced).
        assert!(!fs.crash_image().exists(&root.join("d/a")).unwrap());
        fs.sync_dir(&root.join("d")).unwrap();
        a.write_at(b"two", 0).unwrap();
        let img = fs.crash_image();
        assert_eq!(read_file(&img, &root.join("d/a")).unwrap(), b"one");
        // An atomic replace survives whole.
        write_file_atomic(&fs, &root.join("d/a"), b"three").unwrap();
        assert_eq!(
            read_file(&fs.crash_image(), &root.join("d/a")).unwrap(),
            b"three"
        );
        // Crash at the next sync: that sync does not happen, nothing works after it.
        fs.crash_at_sync(1);
        let b = fs.open(&root.join("d/b"), true).unwrap();
        b.write_at(b"x", 0).unwrap();
        assert!(b.sync().is_err());
        assert!(fs.open(&root.join("d/c"), true).is_err());
        let img = fs.crash_image();
        assert!(!img.exists(&root.join("d/b")).unwrap());
        assert_eq!(img.list_dir(&root.join("d")).unwrap(), ["a"]);
    }
}
