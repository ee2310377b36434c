//! `registry.conf`: the hash mod, chosen when the registry is created and never changed.

use std::path::Path;

use sop_core::codec::{self, seal};
use sop_core::vfs::{FileSystem, read_file, write_file_atomic};
use sop_core::{Error, Result};

use super::{CONF_FILE, MAX_HASH_MOD, MIN_HASH_MOD, Registry, TABLES_DIR};

impl Registry {
    pub(super) fn settle_hash_mod(
        fs: &dyn FileSystem,
        base: &Path,
        asked: Option<u32>,
    ) -> Result<u32> {
        if let Some(m) = asked
            && !(MIN_HASH_MOD..=MAX_HASH_MOD).contains(&m)
        {
            return Err(Error::Usage(sop_core::UsageError::InvalidConfig {
                what: "registry",
                reason: format!("hash mod {m} is out of range {MIN_HASH_MOD}..={MAX_HASH_MOD}"),
            }));
        }
        let path = base.join(CONF_FILE);
        match read_file(fs, &path) {
            Ok(bytes) => {
                let stored = crate::formats::registry_conf(&bytes, &path.display())?;
                match asked {
                    Some(m) if m != stored => {
                        Err(Error::Usage(sop_core::UsageError::InvalidConfig {
                            what: "registry",
                            reason: format!(
                                "hash mod {m} was asked but the registry at {} was created with {stored}; it cannot change",
                                base.display()
                            ),
                        }))
                    }
                    _ => Ok(stored),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A registry that has data but lost its configuration must not be re-created
                // with defaults: every handle would be looked for in the wrong block.
                for dir in [TABLES_DIR, "stores"] {
                    let p = base.join(dir);
                    if fs.list_dir(&p).is_ok_and(|names| !names.is_empty()) {
                        return Err(Error::Corruption(sop_core::CorruptionError::Damaged {
                            what: "registry configuration",
                            location: path.display().to_string(),
                            detail: format!(
                                "missing, but {} holds data: restore the file (its hash mod cannot be guessed safely)",
                                p.display()
                            ),
                        }));
                    }
                }
                let m = asked.unwrap_or(MIN_HASH_MOD);
                let bytes = seal(crate::formats::CONF_FORMAT_VERSION, &codec::encode(&m)?);
                write_file_atomic(fs, &path, &bytes).map_err(Error::io("write", &path))?;
                Ok(m)
            }
            Err(e) => Err(Error::Storage(sop_core::StorageError::Io {
                op: "read",
                path,
                source: e,
            })),
        }
    }
}
