//! A home: the directory where one device keeps its identity and circles.
//!
//! ```text
//! HOME/
//! ├─ format                  the home's format version (see `format`)
//! ├─ lock                    held by the one writer (see `lock`)
//! ├─ identity/
//! │  ├─ device.key           0600, this device's secret key
//! │  └─ member.key           0600, the member identity key
//! ├─ secrets/<circle id>     0600, the circle's keys of its current epoch
//! └─ circles/
//!    └─ <circle id>/         snapshot + log (see `files`), damaged/ if ever needed
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use roundtable_core::{Circle, CircleId, DeviceCert, DeviceId, DeviceKey, Keyring, MemberKey};

use crate::StoreError;
use crate::circle::{CircleStore, Repaired};
use crate::fs::{Fs, OsFs};
use crate::lock::HomeLock;

const IDENTITY: &str = "identity";
const DEVICE_KEY: &str = "device.key";
const MEMBER_KEY: &str = "member.key";
const CIRCLES: &str = "circles";
const SECRETS: &str = "secrets";
const HEADS: &str = "heads";
const PEERS: &str = "peers";
const FORGET: &str = "forget";
const STEWARDS: &str = "stewards";
const FAREWELLS: &str = "farewells";
const ADDRESSES: &str = "addresses.json";
const WEB_HOST: &str = "web-host";
const SEEN: &str = "seen";

/// The node's own records in the home, each a small file written whole
/// (see `docs/ARCHITECTURE.md`, "Storage layout"). The store decides where
/// each lives; the node names what it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRecord {
    /// A circle's signed heads: proofs of who wrote what.
    HeadBook(CircleId),
    /// What was shared with a peer device at the last sync of a circle.
    PeerSync {
        /// The circle.
        circle: CircleId,
        /// The peer device.
        peer: DeviceId,
    },
    /// Where each peer device was last reached.
    AddressBook,
    /// A circle this member left, to forget once the others know.
    Forget(CircleId),
    /// Where this device stands with a circle's stewards.
    Stewards(CircleId),
    /// What this device hands the devices of members a circle removed
    /// (`roundtable_core::farewell`).
    Farewells(CircleId),
    /// The web app's host label for this home: kept so that what a person
    /// typed in the browser while the node was down is still theirs (the
    /// same origin) when it is back. It lets nobody in by itself.
    WebHost,
    /// Where this device's person last looked at a circle
    /// (`roundtable_core::since::Seen`): theirs alone, never synced.
    Seen(CircleId),
}

impl NodeRecord {
    fn path(self) -> String {
        match self {
            NodeRecord::HeadBook(c) => format!("{HEADS}/{c}"),
            NodeRecord::PeerSync { circle, peer } => format!("{PEERS}/{circle}/{peer}"),
            NodeRecord::AddressBook => ADDRESSES.to_owned(),
            NodeRecord::Forget(c) => format!("{FORGET}/{c}"),
            NodeRecord::Stewards(c) => format!("{STEWARDS}/{c}"),
            NodeRecord::Farewells(c) => format!("{FAREWELLS}/{c}"),
            NodeRecord::WebHost => WEB_HOST.to_owned(),
            NodeRecord::Seen(c) => format!("{SEEN}/{c}"),
        }
    }
}

/// Proof that this process is the home's only writer. Every method that
/// writes asks for one.
pub type WriteLock = HomeLock;

/// Who this device is: its key, its member's key, and the certificate that
/// binds them.
#[derive(Debug, Clone)]
pub struct Identity {
    /// This device's secret key.
    pub device: DeviceKey,
    /// The member identity key.
    pub member: MemberKey,
    /// The member's certificate for this device.
    pub cert: DeviceCert,
}

/// One device's home directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
    fs: Arc<dyn Fs>,
}

impl Home {
    /// A home at `root` on the real file system. Nothing is touched yet.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self::with_fs(root, Arc::new(OsFs))
    }

    /// A home on the given file layer (tests inject faults through it).
    pub fn with_fs(root: impl Into<PathBuf>, fs: Arc<dyn Fs>) -> Self {
        Self {
            root: root.into(),
            fs,
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Becomes the home's only writer, or says who is.
    /// A home stamped by a newer release is refused before anything is
    /// written, the lock file included.
    pub fn lock(&self, holder: &str) -> Result<WriteLock, StoreError> {
        self.check_format()?;
        self.fs
            .create_dir_all(&self.root)
            .map_err(|e| StoreError::io("create", &self.root, e))?;
        Ok(HomeLock::acquire(&self.root, holder)?)
    }

    /// A reader's lock: many readers, but not while a writer compacts.
    pub fn lock_shared(&self) -> Result<Option<HomeLock>, StoreError> {
        if !self.root.exists() {
            return Ok(None);
        }
        self.check_format()?;
        Ok(Some(HomeLock::shared(&self.root)?))
    }

    /// The home's format version ([`crate::format`]): its stamp, or 1 for
    /// a home written before stamps.
    pub fn format(&self) -> Result<u32, StoreError> {
        crate::format::read(self.fs.as_ref(), &self.root)
    }

    /// Refuses, in one line, a home a newer release wrote (or whose stamp
    /// does not read). Touches nothing.
    pub fn check_format(&self) -> Result<(), StoreError> {
        crate::format::check(self.fs.as_ref(), &self.root)
    }

    fn identity_dir(&self) -> PathBuf {
        self.root.join(IDENTITY)
    }

    fn circles_dir(&self) -> PathBuf {
        self.root.join(CIRCLES)
    }

    fn circle_dir(&self, id: CircleId) -> PathBuf {
        self.circles_dir().join(id.to_string())
    }

    /// This device's identity, if it has one yet.
    pub fn identity(&self) -> Result<Option<Identity>, StoreError> {
        let dir = self.identity_dir();
        let (dpath, mpath) = (dir.join(DEVICE_KEY), dir.join(MEMBER_KEY));
        let device = match self.fs.read(&dpath) {
            Ok(bytes) => DeviceKey::from_file_text(&bytes).map_err(|e| StoreError::BadKeyFile {
                path: dpath.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("read", &dpath, e)),
        };
        let member = match self.fs.read(&mpath) {
            Ok(bytes) => MemberKey::from_file_text(&bytes).map_err(|e| StoreError::BadKeyFile {
                path: mpath.clone(),
                reason: e.to_string(),
            })?,
            Err(e) => return Err(StoreError::io("read", &mpath, e)),
        };
        let cert = member.certify(device.id());
        Ok(Some(Identity {
            device,
            member,
            cert,
        }))
    }

    /// This device's identity, made (durably, 0600) on first use. Returns
    /// whether it was made now.
    pub fn ensure_identity(&self, _writer: &WriteLock) -> Result<(Identity, bool), StoreError> {
        if let Some(me) = self.identity()? {
            return Ok((me, false));
        }
        // A new home is stamped with its format before anything else.
        let stamp = self.root.join(crate::format::FORMAT_FILE);
        if !self
            .fs
            .exists(&stamp)
            .map_err(|e| StoreError::io("read", &stamp, e))?
        {
            crate::files::write_durably(
                self.fs.as_ref(),
                &stamp,
                crate::format::stamp(crate::format::HOME_FORMAT).as_bytes(),
            )?;
        }
        let dir = self.identity_dir();
        self.fs
            .create_dir_all(&dir)
            .map_err(|e| StoreError::io("create", &dir, e))?;
        let member = MemberKey::generate();
        let device = DeviceKey::generate();
        // The member key first: a device key alone is never left behind without its member.
        self.write_secret(&dir.join(MEMBER_KEY), member.to_file_text().as_bytes())?;
        self.write_secret(&dir.join(DEVICE_KEY), device.to_file_text().as_bytes())?;
        let cert = member.certify(device.id());
        Ok((
            Identity {
                device,
                member,
                cert,
            },
            true,
        ))
    }

    fn write_secret(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        crate::files::write_durably(self.fs.as_ref(), path, bytes)
    }

    /// The circles kept here, in id order.
    pub fn circle_ids(&self) -> Result<Vec<CircleId>, StoreError> {
        let dir = self.circles_dir();
        let names = match self.fs.list_dir(&dir) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("list", &dir, e)),
        };
        let mut ids: Vec<CircleId> = names.iter().filter_map(|n| n.parse().ok()).collect();
        ids.sort();
        Ok(ids)
    }

    /// Reads a circle without writing anything. Refuses if its files are
    /// damaged (beyond the torn tail a crash leaves), naming `repair`.
    pub fn read_circle(&self, id: CircleId) -> Result<Circle, StoreError> {
        CircleStore::read(self.fs.clone(), &self.circle_dir(id))
    }

    /// Opens a circle to edit it.
    pub fn open_circle(&self, writer: &WriteLock, id: CircleId) -> Result<CircleStore, StoreError> {
        let me = self.identity()?.ok_or(StoreError::NoIdentity)?;
        CircleStore::open(
            self.fs.clone(),
            &self.circle_dir(id),
            me.device.id(),
            writer.session(),
        )
    }

    /// Stores a new circle durably, with its keys (kept 0600 beside the
    /// identity; written first, so a circle is never without its key).
    pub fn create_circle(
        &self,
        writer: &WriteLock,
        circle: &Circle,
        keys: &Keyring,
    ) -> Result<CircleStore, StoreError> {
        let me = self.identity()?.ok_or(StoreError::NoIdentity)?;
        self.save_circle_keys(writer, circle.id(), keys)?;
        let circles = self.circles_dir();
        self.fs
            .create_dir_all(&circles)
            .map_err(|e| StoreError::io("create", &circles, e))?;
        CircleStore::create(
            self.fs.clone(),
            &self.circle_dir(circle.id()),
            circle,
            me.device.id(),
            writer.session(),
        )
    }

    /// A circle's keys for its current epoch (see `roundtable_core::keys`).
    pub fn circle_keys(&self, id: CircleId) -> Result<Option<Keyring>, StoreError> {
        let path = self.root.join(SECRETS).join(id.to_string());
        match self.fs.read(&path) {
            Ok(bytes) => {
                Keyring::from_file_text(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::BadKeyFile {
                        path,
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read", &path, e)),
        }
    }

    /// Keeps a circle's keys (durably, 0600), replacing those of earlier epochs.
    pub fn save_circle_keys(
        &self,
        _writer: &WriteLock,
        id: CircleId,
        keys: &Keyring,
    ) -> Result<(), StoreError> {
        let dir = self.root.join(SECRETS);
        crate::files::create_dir_durably(self.fs.as_ref(), &dir)?;
        self.write_secret(&dir.join(id.to_string()), keys.to_file_text().as_bytes())
    }

    /// Replaces this device's member key (pairing makes a device speak for
    /// an existing member). The caller makes sure the device is in no circle
    /// under its old member key first.
    pub fn adopt_member_key(
        &self,
        _writer: &WriteLock,
        member: &MemberKey,
    ) -> Result<Identity, StoreError> {
        let dir = self.identity_dir();
        self.write_secret(&dir.join(MEMBER_KEY), member.to_file_text().as_bytes())?;
        self.identity()?.ok_or(StoreError::NoIdentity)
    }

    /// Gives this home the identity of the given keys, replacing any: for
    /// tools that build many devices of known keys (simulations,
    /// benchmarks), not for a person's device, which makes its own.
    pub fn set_identity(
        &self,
        _writer: &WriteLock,
        member: &MemberKey,
        device: &DeviceKey,
    ) -> Result<Identity, StoreError> {
        let dir = self.identity_dir();
        crate::files::create_dir_durably(self.fs.as_ref(), &dir)?;
        self.write_secret(&dir.join(MEMBER_KEY), member.to_file_text().as_bytes())?;
        self.write_secret(&dir.join(DEVICE_KEY), device.to_file_text().as_bytes())?;
        self.identity()?.ok_or(StoreError::NoIdentity)
    }

    /// One of the node's own records, if it was written.
    pub fn read_record(&self, record: NodeRecord) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_file(&record.path())
    }

    /// Writes one of the node's own records, atomically and durably.
    pub fn write_record(
        &self,
        _writer: &WriteLock,
        record: NodeRecord,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let path = self.root.join(record.path());
        if let Some(parent) = path.parent() {
            crate::files::create_dir_durably(self.fs.as_ref(), parent)?;
        }
        crate::files::write_durably(self.fs.as_ref(), &path, bytes)
    }

    fn read_file(&self, rel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.root.join(rel);
        match self.fs.read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read", &path, e)),
        }
    }

    /// Forgets a circle: its files, keys, signed heads and sync state are
    /// removed from this device. Only for a circle this member left.
    pub fn forget_circle(&self, _writer: &WriteLock, id: CircleId) -> Result<(), StoreError> {
        for rel in [
            format!("{CIRCLES}/{id}"),
            format!("{SECRETS}/{id}"),
            NodeRecord::HeadBook(id).path(),
            format!("{PEERS}/{id}"),
            NodeRecord::Stewards(id).path(),
            NodeRecord::Farewells(id).path(),
            NodeRecord::Forget(id).path(),
        ] {
            let path = self.root().join(&rel);
            let gone = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match gone {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StoreError::Io {
                        op: "remove",
                        path,
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }

    /// Asks that a circle be forgotten once the others know this member
    /// left (see [`Home::forget_circle`]).
    pub fn mark_forget(&self, writer: &WriteLock, id: CircleId) -> Result<(), StoreError> {
        self.write_record(
            writer,
            NodeRecord::Forget(id),
            b"forget once the others know\n",
        )
    }

    /// Takes back [`Home::mark_forget`]: the member came back.
    pub fn unmark_forget(&self, _writer: &WriteLock, id: CircleId) -> Result<(), StoreError> {
        let path = self.root.join(NodeRecord::Forget(id).path());
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove", &path, e)),
        }
    }

    /// Whether a circle is to be forgotten once the others know.
    pub fn marked_forget(&self, id: CircleId) -> bool {
        self.read_record(NodeRecord::Forget(id))
            .ok()
            .flatten()
            .is_some()
    }

    /// Sets a damaged circle's files aside and keeps every change that verifies.
    pub fn repair_circle(&self, _writer: &WriteLock, id: CircleId) -> Result<Repaired, StoreError> {
        CircleStore::repair(self.fs.clone(), &self.circle_dir(id))
    }
}
