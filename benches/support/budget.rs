//! A CPU budget for one process, as a machine of its own would give it: a
//! cgroup with a CPU quota (cgroup v1 `cpu.cfs_quota_us` or v2 `cpu.max`).
//! The process may use at most `millicores` / 1000 of a core, on any core.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One cgroup with a CPU quota, removed when dropped.
pub struct Budget {
    dir: PathBuf,
}

const PERIOD_US: u64 = 100_000;

impl Budget {
    /// A new cgroup named `name` with a quota of `millicores`; an error when
    /// the machine has no writable cpu cgroup.
    pub fn new(name: &str, millicores: u64) -> anyhow::Result<Budget> {
        let quota = millicores * PERIOD_US / 1000;
        for root in [
            "/sys/fs/cgroup/cpu",
            "/sys/fs/cgroup",
            "/sys/fs/cgroup/unified",
        ] {
            let dir = Path::new(root).join(name);
            let _ = std::fs::remove_dir(&dir);
            if std::fs::create_dir(&dir).is_err() {
                continue;
            }
            let written = if dir.join("cpu.cfs_quota_us").exists() {
                std::fs::write(dir.join("cpu.cfs_period_us"), PERIOD_US.to_string())
                    .and_then(|()| std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string()))
            } else {
                std::fs::write(dir.join("cpu.max"), format!("{quota} {PERIOD_US}"))
            };
            if written.is_ok() {
                return Ok(Budget { dir });
            }
            let _ = std::fs::remove_dir(&dir);
        }
        anyhow::bail!("no writable cpu cgroup (v1 /sys/fs/cgroup/cpu or v2 cpu.max)")
    }

    /// `program` started inside this cgroup: a shell that joins the cgroup,
    /// then becomes the program (same pid).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("sh");
        c.args([
            "-c",
            r#"echo $$ > "$0/cgroup.procs" && exec "$@""#,
            &self.dir.display().to_string(),
            program,
        ]);
        c
    }

    /// The share of quota periods in which the cgroup was held back (0..=1):
    /// near 1 when its processes wanted more than the budget.
    pub fn throttled(&self) -> f64 {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).unwrap_or_default();
        let field = |name: &str| -> f64 {
            stat.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or(0.0)
        };
        let periods = field("nr_periods");
        if periods == 0.0 {
            0.0
        } else {
            field("nr_throttled") / periods
        }
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        // The cgroup can go only once its processes have (the caller kills
        // them first); a leftover empty cgroup is harmless.
        let _ = std::fs::remove_dir(&self.dir);
    }
}
