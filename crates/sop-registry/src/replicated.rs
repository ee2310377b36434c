//! Active/passive replication of metadata across two folders (two drives), at the file layer.
//!
//! [`ReplicatedFs`] is a [`FileSystem`] over two roots. Paths given to it are relative to the
//! roots. Every change goes to the active side, then to the passive side; reads come from the
//! active side. The registry and the store repository run on it unchanged, so both sides stay
//! byte for byte identical.
//!
//! - An I/O error of a failing drive ([`sop_core::vfs::is_drive_failure`]) on the active side
//!   *fails over*: the passive side becomes active, the call is retried there, and the change is
//!   recorded durably in `replication.status` (a sealed record with a term that grows with every
//!   role change, so the newest status wins on the next open).
//! - While one side is down, every change is appended to `replication.delta` on the active side
//!   (synced whenever the active side is), so the failed side can be fast-forwarded.
//! - [`ReplicatedFs::reinstate`] brings the repaired side back: it replays the delta log when
//!   the side was down since the log began (its status has the log's base term), or copies the
//!   active side file by file when it is a replaced, empty or unknown drive; then both sides
//!   are in rotation again.
//!
//! The names `replication.status` and `replication.delta` at the root are reserved.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::{fmt, io};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sop_core::codec::{self, seal, unseal};
use sop_core::vfs::{FileHandle, FileSystem, is_drive_failure, read_file, write_file_atomic};
use sop_core::{Error, Result};

const STATUS_FILE: &str = "replication.status";
const DELTA_FILE: &str = "replication.delta";
/// Format version of the status record and of delta-log records.
pub const REPLICATION_FORMAT_VERSION: u8 = 1;

/// What each side's `replication.status` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Status {
    pub(crate) term: u64,
    active: u8,
    in_sync: bool,
}

/// A change recorded while the passive side is down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum DeltaOp {
    /// First record: the term the failed side was last in step at.
    Base {
        term: u64,
    },
    Create {
        path: String,
    },
    Write {
        path: String,
        offset: u64,
        data: Vec<u8>,
    },
    SetLen {
        path: String,
        len: u64,
    },
    Rename {
        from: String,
        to: String,
    },
    Remove {
        path: String,
    },
    CreateDir {
        path: String,
    },
    RemoveDirAll {
        path: String,
    },
}

/// Which side is active and whether the other is in step.
struct State {
    term: u64,
    active: usize,
    passive_ok: bool,
    /// The delta log on the active side while the passive side is down, and its end.
    delta: Option<(Box<dyn FileHandle>, u64)>,
}

struct Shared {
    inner: Arc<dyn FileSystem>,
    roots: [PathBuf; 2],
    state: RwLock<State>,
}

/// The replication state, for people and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicationStatus {
    /// Grows with every failover and reinstate.
    pub term: u64,
    /// The active root's index (0 or 1).
    pub active: usize,
    /// Whether the passive side receives changes.
    pub passive_in_sync: bool,
}

/// How [`ReplicatedFs::reinstate`] brought the failed side back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reinstated {
    /// Both sides were already in step.
    NothingToDo,
    /// The delta log was replayed: this many changes.
    FastForwarded(usize),
    /// The side was copied whole: this many files.
    Copied(usize),
}

/// A file system mirrored over two roots. See the module documentation.
#[derive(Clone)]
pub struct ReplicatedFs {
    shared: Arc<Shared>,
}

impl fmt::Debug for ReplicatedFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicatedFs")
            .field("roots", &self.shared.roots)
            .field("status", &self.status())
            .finish()
    }
}

fn rel_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn check_rel(p: &Path) -> io::Result<()> {
    let ok = p
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if ok && p != Path::new(STATUS_FILE) && p != Path::new(DELTA_FILE) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "replicated paths are relative, without '..', and not reserved: {}",
                p.display()
            ),
        ))
    }
}

impl Shared {
    fn at(&self, side: usize, rel: &Path) -> PathBuf {
        self.roots[side].join(rel)
    }

    fn read_status(&self, side: usize) -> Option<Status> {
        let path = self.at(side, Path::new(STATUS_FILE));
        let bytes = read_file(self.inner.as_ref(), &path).ok()?;
        parse_status(&bytes, &path.display()).ok()
    }

    fn write_status(&self, side: usize, st: &State, in_sync: bool) -> Result<()> {
        let status = Status {
            term: st.term,
            active: u8::from(st.active == 1),
            in_sync,
        };
        let path = self.at(side, Path::new(STATUS_FILE));
        let bytes = seal(REPLICATION_FORMAT_VERSION, &codec::encode(&status)?);
        write_file_atomic(self.inner.as_ref(), &path, &bytes).map_err(Error::io("write", &path))
    }

    /// Starts a fresh delta log on the active side, based at `base_term`.
    fn start_delta(&self, st: &mut State, base_term: u64) -> Result<()> {
        let path = self.at(st.active, Path::new(DELTA_FILE));
        let file = self
            .inner
            .open(&path, true)
            .map_err(Error::io("open", &path))?;
        file.set_len(0).map_err(Error::io("truncate", &path))?;
        let record = seal(
            REPLICATION_FORMAT_VERSION,
            &codec::encode(&DeltaOp::Base { term: base_term })?,
        );
        file.write_at(&record, 0)
            .map_err(Error::io("write", &path))?;
        file.sync().map_err(Error::io("sync", &path))?;
        self.inner
            .sync_dir(&self.roots[st.active])
            .map_err(Error::io("sync folder", &self.roots[st.active]))?;
        st.delta = Some((file, record.len() as u64));
        Ok(())
    }

    /// The passive side failed: stop writing to it and log changes for it from now on.
    fn passive_down(&self, st: &mut State) -> io::Result<()> {
        let base = st.term;
        st.term += 1;
        st.passive_ok = false;
        self.write_status(st.active, st, false)
            .and_then(|()| self.start_delta(st, base))
            .map_err(io::Error::other)
    }

    /// The active side failed: the passive side takes over.
    fn failover(&self, st: &mut State) -> io::Result<()> {
        if !st.passive_ok {
            return Err(io::Error::other(Error::Storage(
                sop_core::StorageError::NoReplicaLeft {
                    detail: format!(
                        "the active side {} failed and the passive side is already down",
                        self.roots[st.active].display()
                    ),
                },
            )));
        }
        st.active = 1 - st.active;
        self.passive_down(st)
    }

    fn log(&self, st: &mut State, op: DeltaOp) -> io::Result<()> {
        if let Some((file, end)) = &mut st.delta {
            let record = seal(
                REPLICATION_FORMAT_VERSION,
                &codec::encode(&op).map_err(io::Error::other)?,
            );
            file.write_at(&record, *end)?;
            *end += record.len() as u64;
        }
        Ok(())
    }

    fn sync_delta(st: &State) -> io::Result<()> {
        match &st.delta {
            Some((file, _)) => file.sync(),
            None => Ok(()),
        }
    }

    /// Runs a change on the active side (failing over on a drive failure), then on the passive
    /// side (taking it down on any failure), logging it while the passive side is down.
    fn mutate<T>(
        &self,
        op: impl FnOnce() -> DeltaOp,
        f: impl Fn(usize) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut st = self.state.write();
        let value = loop {
            match f(st.active) {
                Ok(v) => break v,
                Err(e) if is_drive_failure(&e) && st.passive_ok => self.failover(&mut st)?,
                Err(e) => return Err(e),
            }
        };
        if st.passive_ok && f(1 - st.active).is_err() {
            self.passive_down(&mut st)?;
        }
        if !st.passive_ok {
            self.log(&mut st, op())?;
        }
        Ok(value)
    }

    /// Syncs the active side (failing over on a drive failure), then the passive side (taking it
    /// down on failure), then the delta log when the passive side is down.
    fn sync_both(&self, f: impl Fn(usize) -> io::Result<()>) -> io::Result<()> {
        let mut st = self.state.write();
        loop {
            match f(st.active) {
                Ok(()) => break,
                Err(e) if is_drive_failure(&e) && st.passive_ok => self.failover(&mut st)?,
                Err(e) => return Err(e),
            }
        }
        if st.passive_ok && f(1 - st.active).is_err() {
            self.passive_down(&mut st)?;
        }
        Self::sync_delta(&st)
    }

    /// Runs a read on the active side, failing over on a drive failure.
    fn read<T>(&self, f: impl Fn(usize) -> io::Result<T>) -> io::Result<T> {
        let active = self.state.read().active;
        match f(active) {
            Err(e) if is_drive_failure(&e) => {
                let mut st = self.state.write();
                if st.active == active {
                    self.failover(&mut st)?;
                }
                f(st.active)
            }
            r => r,
        }
    }
}

impl ReplicatedFs {
    /// Opens replication over `roots` (created when missing), restoring the state the newest
    /// status record describes.
    ///
    /// # Errors
    /// [`StorageError::NoReplicaLeft`](sop_core::StorageError::NoReplicaLeft) when neither root can be used; I/O errors.
    pub fn open(inner: Arc<dyn FileSystem>, roots: [PathBuf; 2]) -> Result<Self> {
        let usable: Vec<bool> = roots
            .iter()
            .map(|r| inner.create_dir_all(r).is_ok())
            .collect();
        let shared = Shared {
            inner,
            roots,
            state: RwLock::new(State {
                term: 0,
                active: 0,
                passive_ok: true,
                delta: None,
            }),
        };
        let statuses = [shared.read_status(0), shared.read_status(1)];
        let newest = (0..2)
            .filter_map(|i| statuses[i].map(|s| (s, i)))
            .max_by_key(|(s, _)| s.term);
        {
            let mut st = shared.state.write();
            match newest {
                None => {
                    // A new pair (or neither status readable): side 0 leads if it is usable.
                    st.active = if usable[0] { 0 } else { 1 };
                    for (side, ok) in usable.iter().enumerate() {
                        if *ok {
                            shared.write_status(side, &st, true)?;
                        }
                    }
                    if !usable[0] || !usable[1] {
                        shared.passive_down(&mut st).map_err(|e| {
                            Error::Storage(sop_core::StorageError::NoReplicaLeft {
                                detail: e.to_string(),
                            })
                        })?;
                    }
                }
                Some((s, _)) => {
                    st.term = s.term;
                    st.active = usize::from(s.active);
                    let other = statuses[1 - st.active];
                    let passive_current = s.in_sync
                        && other.is_some_and(|o| o.term == s.term)
                        && usable[1 - st.active];
                    if !s.in_sync {
                        st.passive_ok = false;
                        let path = shared.at(st.active, Path::new(DELTA_FILE));
                        match shared.inner.open(&path, false) {
                            Ok(file) => {
                                let end = file.size().map_err(Error::io("stat", &path))?;
                                st.delta = Some((file, end));
                            }
                            Err(_) => shared.start_delta(&mut st, s.term.saturating_sub(1))?,
                        }
                    } else if !passive_current {
                        shared.passive_down(&mut st).map_err(|e| {
                            Error::Storage(sop_core::StorageError::NoReplicaLeft {
                                detail: e.to_string(),
                            })
                        })?;
                    }
                }
            }
        }
        Ok(ReplicatedFs {
            shared: Arc::new(shared),
        })
    }

    /// Which side is active and whether the other is in step.
    #[must_use]
    pub fn status(&self) -> ReplicationStatus {
        let st = self.shared.state.read();
        ReplicationStatus {
            term: st.term,
            active: st.active,
            passive_in_sync: st.passive_ok,
        }
    }

    /// Brings the failed side back into rotation as the passive side: fast-forwards it with the
    /// delta log, or copies the active side whole when the log cannot vouch for it.
    ///
    /// # Errors
    /// I/O errors on either side (the failed side stays out of rotation then).
    pub fn reinstate(&self) -> Result<Reinstated> {
        let sh = &self.shared;
        let mut st = sh.state.write();
        if st.passive_ok {
            return Ok(Reinstated::NothingToDo);
        }
        let (active, failed) = (st.active, 1 - st.active);
        let delta_path = sh.at(active, Path::new(DELTA_FILE));
        let log =
            read_file(sh.inner.as_ref(), &delta_path).map_err(Error::io("read", &delta_path))?;
        let ops = parse_delta(&log, &delta_path)?;
        let base = match ops.first() {
            Some(DeltaOp::Base { term }) => Some(*term),
            _ => None,
        };
        let failed_status = sh.read_status(failed);
        sh.inner
            .create_dir_all(&sh.roots[failed])
            .map_err(Error::io("create folder", &sh.roots[failed]))?;
        let how = if base.is_some() && failed_status.map(|s| s.term) == base {
            for op in ops.iter().skip(1) {
                replay(sh.inner.as_ref(), &sh.roots[failed], op)?;
            }
            Reinstated::FastForwarded(ops.len().saturating_sub(1))
        } else {
            clear_dir(sh.inner.as_ref(), &sh.roots[failed])?;
            Reinstated::Copied(copy_tree(
                sh.inner.as_ref(),
                &sh.roots[active],
                &sh.roots[failed],
                Path::new(""),
            )?)
        };
        sync_tree(sh.inner.as_ref(), &sh.roots[failed])?;
        st.term += 1;
        st.passive_ok = true;
        sh.write_status(failed, &st, true)?;
        sh.write_status(active, &st, true)?;
        st.delta = None;
        sh.inner
            .remove_file(&delta_path)
            .map_err(Error::io("remove", &delta_path))?;
        sh.inner
            .sync_dir(&sh.roots[active])
            .map_err(Error::io("sync folder", &sh.roots[active]))?;
        Ok(how)
    }
}

/// A `replication.status` file.
pub(crate) fn parse_status(bytes: &[u8], location: &dyn std::fmt::Display) -> Result<Status> {
    let payload = unseal(
        bytes,
        REPLICATION_FORMAT_VERSION,
        "replication status",
        location,
    )?;
    codec::decode(payload, "replication status")
}

/// The changes in a `replication.delta` file, up to a torn last record.
pub(crate) fn parse_delta(bytes: &[u8], path: &Path) -> Result<Vec<DeltaOp>> {
    let mut ops = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        // A torn last record is a change whose sync never completed: it did not happen.
        let Some(end) = codec::sealed_frame_end(bytes, at) else {
            break;
        };
        let Ok(payload) = unseal(
            &bytes[at..end],
            REPLICATION_FORMAT_VERSION,
            "replication delta",
            &path.display(),
        ) else {
            break;
        };
        ops.push(codec::decode(payload, "replication delta")?);
        at = end;
    }
    Ok(ops)
}

fn replay(fs: &dyn FileSystem, root: &Path, op: &DeltaOp) -> Result<()> {
    let p = |s: &str| root.join(s);
    let ignore_missing = |r: io::Result<()>, op: &'static str, path: PathBuf| match r {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(Error::Storage(sop_core::StorageError::Io {
                op,
                path,
                source: e,
            }))
        }
        _ => Ok(()),
    };
    match op {
        DeltaOp::Base { .. } => Ok(()),
        DeltaOp::Create { path } => fs
            .open(&p(path), true)
            .map(drop)
            .map_err(Error::io("create", p(path))),
        DeltaOp::Write { path, offset, data } => fs
            .open(&p(path), true)
            .and_then(|f| f.write_at(data, *offset))
            .map_err(Error::io("write", p(path))),
        DeltaOp::SetLen { path, len } => fs
            .open(&p(path), true)
            .and_then(|f| f.set_len(*len))
            .map_err(Error::io("truncate", p(path))),
        DeltaOp::Rename { from, to } => fs
            .rename(&p(from), &p(to))
            .map_err(Error::io("rename", p(from))),
        DeltaOp::Remove { path } => ignore_missing(fs.remove_file(&p(path)), "remove", p(path)),
        DeltaOp::CreateDir { path } => fs
            .create_dir_all(&p(path))
            .map_err(Error::io("create folder", p(path))),
        DeltaOp::RemoveDirAll { path } => {
            ignore_missing(fs.remove_dir_all(&p(path)), "remove", p(path))
        }
    }
}

/// Whether `path` is a folder (it can be listed).
fn is_dir(fs: &dyn FileSystem, path: &Path) -> bool {
    fs.list_dir(path).is_ok()
}

fn clear_dir(fs: &dyn FileSystem, root: &Path) -> Result<()> {
    for name in fs.list_dir(root).map_err(Error::io("list", root))? {
        let path = root.join(&name);
        let r = if is_dir(fs, &path) {
            fs.remove_dir_all(&path)
        } else {
            fs.remove_file(&path)
        };
        r.map_err(Error::io("remove", &path))?;
    }
    Ok(())
}

fn copy_tree(fs: &dyn FileSystem, from: &Path, to: &Path, rel: &Path) -> Result<usize> {
    let mut files = 0;
    let dir = from.join(rel);
    for name in fs.list_dir(&dir).map_err(Error::io("list", &dir))? {
        let child = rel.join(&name);
        if rel.as_os_str().is_empty() && (name == DELTA_FILE || name == STATUS_FILE) {
            continue;
        }
        let src = from.join(&child);
        if is_dir(fs, &src) {
            fs.create_dir_all(&to.join(&child))
                .map_err(Error::io("create folder", to.join(&child)))?;
            files += copy_tree(fs, from, to, &child)?;
        } else {
            let bytes = read_file(fs, &src).map_err(Error::io("read", &src))?;
            let dst = to.join(&child);
            let f = fs.open(&dst, true).map_err(Error::io("create", &dst))?;
            f.set_len(0)
                .and_then(|()| f.write_at(&bytes, 0))
                .map_err(Error::io("write", &dst))?;
            files += 1;
        }
    }
    Ok(files)
}

fn sync_tree(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    for name in fs.list_dir(dir).map_err(Error::io("list", dir))? {
        let path = dir.join(name);
        if is_dir(fs, &path) {
            sync_tree(fs, &path)?;
        } else {
            fs.open(&path, false)
                .and_then(|f| f.sync())
                .map_err(Error::io("sync", &path))?;
        }
    }
    fs.sync_dir(dir).map_err(Error::io("sync folder", dir))
}

struct ReplicatedFile {
    shared: Arc<Shared>,
    rel: PathBuf,
    /// Each side's handle, opened on first use: a side that was down when the file was opened
    /// is reached again after it is reinstated.
    sides: [parking_lot::Mutex<Option<Arc<dyn FileHandle>>>; 2],
}

impl ReplicatedFile {
    fn side(&self, i: usize) -> io::Result<Arc<dyn FileHandle>> {
        let mut slot = self.sides[i].lock();
        if let Some(f) = slot.as_ref() {
            return Ok(Arc::clone(f));
        }
        let f: Arc<dyn FileHandle> = Arc::from(
            self.shared
                .inner
                .open(&self.shared.at(i, &self.rel), false)?,
        );
        *slot = Some(Arc::clone(&f));
        Ok(f)
    }
}

impl FileHandle for ReplicatedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let buf = parking_lot::Mutex::new(buf);
        self.shared
            .read(|i| self.side(i)?.read_at(&mut buf.lock(), offset))
    }
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        let op = || DeltaOp::Write {
            path: rel_str(&self.rel),
            offset,
            data: data.to_vec(),
        };
        self.shared
            .mutate(op, |i| self.side(i)?.write_at(data, offset))
    }
    fn size(&self) -> io::Result<u64> {
        self.shared.read(|i| self.side(i)?.size())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let op = || DeltaOp::SetLen {
            path: rel_str(&self.rel),
            len,
        };
        self.shared.mutate(op, |i| self.side(i)?.set_len(len))
    }
    fn sync(&self) -> io::Result<()> {
        self.shared.sync_both(|i| self.side(i)?.sync())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.shared.sync_both(|i| self.side(i)?.sync_data())
    }
}

impl FileSystem for ReplicatedFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn FileHandle>> {
        check_rel(path)?;
        let sh = &self.shared;
        let file = ReplicatedFile {
            shared: Arc::clone(sh),
            rel: path.to_path_buf(),
            sides: [parking_lot::Mutex::new(None), parking_lot::Mutex::new(None)],
        };
        let open_side = |i: usize| -> io::Result<()> {
            let f: Arc<dyn FileHandle> = Arc::from(sh.inner.open(&sh.at(i, path), create)?);
            *file.sides[i].lock() = Some(f);
            Ok(())
        };
        if create {
            sh.mutate(
                || DeltaOp::Create {
                    path: rel_str(path),
                },
                open_side,
            )?;
        } else {
            sh.read(open_side)?;
        }
        Ok(Box::new(file))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        check_rel(from)?;
        check_rel(to)?;
        let sh = &self.shared;
        sh.mutate(
            || DeltaOp::Rename {
                from: rel_str(from),
                to: rel_str(to),
            },
            |i| sh.inner.rename(&sh.at(i, from), &sh.at(i, to)),
        )
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        check_rel(path)?;
        let sh = &self.shared;
        sh.mutate(
            || DeltaOp::Remove {
                path: rel_str(path),
            },
            |i| sh.inner.remove_file(&sh.at(i, path)),
        )
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        check_rel(path)?;
        let sh = &self.shared;
        sh.mutate(
            || DeltaOp::CreateDir {
                path: rel_str(path),
            },
            |i| sh.inner.create_dir_all(&sh.at(i, path)),
        )
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        check_rel(path)?;
        let sh = &self.shared;
        sh.mutate(
            || DeltaOp::RemoveDirAll {
                path: rel_str(path),
            },
            |i| sh.inner.remove_dir_all(&sh.at(i, path)),
        )
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let sh = &self.shared;
        let mut names = sh.read(|i| sh.inner.list_dir(&sh.at(i, path)))?;
        if path.as_os_str().is_empty() || path == Path::new(".") {
            names.retain(|n| n != STATUS_FILE && n != DELTA_FILE);
        }
        Ok(names)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let sh = &self.shared;
        sh.sync_both(|i| sh.inner.sync_dir(&sh.at(i, path)))
    }
    fn sync_fs(&self, path: &Path) -> io::Result<()> {
        check_rel(path)?;
        let sh = &self.shared;
        sh.sync_both(|side| sh.inner.sync_fs(&sh.at(side, path)))
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        let sh = &self.shared;
        sh.read(|i| sh.inner.exists(&sh.at(i, path)))
    }
    fn sync_count(&self) -> u64 {
        self.shared.inner.sync_count()
    }
}
