//! A work dir as an admin has it: the shipped `config/`, `rules/` and
//! `templates/`, copied from the repository.

use std::path::Path;

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

pub fn work_dir() -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["config", "rules", "templates"] {
        copy_dir(&repo.join(sub), &dir.path().join(sub))?;
    }
    Ok(dir)
}

/// The binary measured: this build's, or `TICKETD_BIN` (to compare builds).
pub fn ticketd_bin() -> String {
    std::env::var("TICKETD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ticketd").into())
}
