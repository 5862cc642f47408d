//! Files outside the database: attachments stored content-addressed by sha256
//! (`dir/ab/cdef…`), and raw copies of quarantined messages. Each file is
//! written to a temporary name, synced, then renamed, so a crash leaves either
//! nothing or the whole file.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the content with this hash lives under `dir`.
pub fn content_path(dir: &Path, sha256: &str) -> PathBuf {
    let (head, tail) = sha256.split_at(2.min(sha256.len()));
    dir.join(head).join(tail)
}

/// Stores `data` under its sha256 and returns the hash. Storing the same
/// content twice writes it once.
pub fn put(dir: &Path, data: &[u8]) -> std::io::Result<String> {
    let sha256 = hex::encode(Sha256::digest(data));
    let path = content_path(dir, &sha256);
    if path.exists() {
        return Ok(sha256);
    }
    write_durably(&path, data)?;
    Ok(sha256)
}

/// Writes a whole file durably: temp file, fsync, rename, fsync of the folder.
pub fn write_durably(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(data)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Stores a stream of any size under its sha256 without holding it in memory.
/// Returns the hash and the size.
pub fn put_stream(dir: &Path, mut input: impl std::io::Read) -> std::io::Result<(String, u64)> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-stream-{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])?;
        size += n as u64;
    }
    file.sync_all()?;
    let sha256 = hex::encode(hasher.finalize());
    let path = content_path(dir, &sha256);
    std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
    std::fs::rename(&tmp, &path)?;
    Ok((sha256, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_addressed_by_hash_and_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = put(dir.path(), b"hello").unwrap();
        assert_eq!(
            a,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(
            std::fs::read(content_path(dir.path(), &a)).unwrap(),
            b"hello"
        );
        assert_eq!(put(dir.path(), b"hello").unwrap(), a);
    }
}
