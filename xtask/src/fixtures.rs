//! Tarballs for the tests, built entry by entry: those of the library's own
//! unit tests and those of `xtask/tests/`. Not for use outside tests: it
//! panics on every error.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Builds tarballs entry by entry, including the malicious ones the tar
/// crate's safe setters refuse to make.
pub struct TarBuilder(tar::Builder<Vec<u8>>);

impl Default for TarBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TarBuilder {
    pub fn new() -> Self {
        TarBuilder(tar::Builder::new(Vec::new()))
    }

    fn header(name: &str, kind: tar::EntryType, mode: u32, size: usize) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        // Write the name bytes directly: set_path() would refuse `..` and `/`.
        let field = &mut header.as_old_mut().name;
        field[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size as u64);
        header.set_mtime(1_700_000_000);
        header.set_uid(0);
        header.set_gid(0);
        header
    }

    pub fn dir(mut self, name: &str, mode: u32) -> Self {
        let mut header = Self::header(name, tar::EntryType::Directory, mode, 0);
        header.set_cksum();
        self.0.append(&header, io::empty()).unwrap();
        self
    }

    pub fn file(mut self, name: &str, mode: u32, data: &[u8]) -> Self {
        let mut header = Self::header(name, tar::EntryType::Regular, mode, data.len());
        header.set_cksum();
        self.0.append(&header, data).unwrap();
        self
    }

    pub fn link(mut self, kind: tar::EntryType, name: &str, target: &str) -> Self {
        let mut header = Self::header(name, kind, 0o777, 0);
        header.set_link_name_literal(target).unwrap();
        header.set_cksum();
        self.0.append(&header, io::empty()).unwrap();
        self
    }

    pub fn device(mut self, name: &str, kind: tar::EntryType, mode: u32, dev: (u32, u32)) -> Self {
        let mut header = Self::header(name, kind, mode, 0);
        header.set_device_major(dev.0).unwrap();
        header.set_device_minor(dev.1).unwrap();
        header.set_cksum();
        self.0.append(&header, io::empty()).unwrap();
        self
    }

    /// The tarball's bytes, uncompressed.
    pub fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }

    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.link(tar::EntryType::Symlink, name, target)
    }

    pub fn hard_link(self, name: &str, target: &str) -> Self {
        self.link(tar::EntryType::Link, name, target)
    }

    /// Writes the tarball, gzip-compressed or not, into `dir`.
    pub fn write(self, dir: &Path, gzip: bool) -> PathBuf {
        self.write_to(&dir.join(if gzip { "t.tar.gz" } else { "t.tar" }))
    }

    /// Writes the tarball at `path`, gzip-compressed when its name ends in `.gz`.
    pub fn write_to(self, path: &Path) -> PathBuf {
        let bytes = self.0.into_inner().unwrap();
        let gzip = path.extension().is_some_and(|ext| ext == "gz");
        if gzip {
            use std::io::Write;
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(&bytes).unwrap();
            fs::write(path, encoder.finish().unwrap()).unwrap();
        } else {
            fs::write(path, bytes).unwrap();
        }
        path.to_owned()
    }
}
