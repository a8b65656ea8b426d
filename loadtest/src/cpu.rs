//! The process's own CPU time, to report what each request cost the driver; and
//! another process's (`run --server-pid`), to report what each order cost the server.
//!
//! Read from `/proc/self/stat` (fields 14 and 15, `utime` and `stime`, summed over all
//! threads), not `getrusage`: that would need `unsafe` FFI, which the workspace denies.
//! The unit is USER_HZ, which Linux fixes at 100 per second for user space whatever
//! the kernel's tick, so the resolution is 10 ms: negligible over a run of seconds.

use std::time::Duration;

use anyhow::Context;

/// `/proc` clock ticks per second (USER_HZ; part of the Linux ABI).
const USER_HZ: u64 = 100;

/// User and system CPU time of the whole process since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    pub const SOURCE: &'static str = "/proc/self/stat utime+stime";

    pub fn now() -> anyhow::Result<CpuTime> {
        let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
        parse_stat(&stat).context("parsing /proc/self/stat")
    }

    /// The CPU time of process `pid` (another process on this machine: the server
    /// under test, to report its CPU per order).
    pub fn of_pid(pid: u32) -> anyhow::Result<CpuTime> {
        let path = format!("/proc/{pid}/stat");
        let stat =
            std::fs::read_to_string(&path).with_context(|| format!("reading {path} (is process {pid} running?)"))?;
        parse_stat(&stat).with_context(|| format!("parsing {path}"))
    }

    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime { user: self.user.saturating_sub(earlier.user), system: self.system.saturating_sub(earlier.system) }
    }

    pub fn total(self) -> Duration {
        self.user + self.system
    }
}

fn parse_stat(stat: &str) -> Option<CpuTime> {
    // Field 2 is the command in parentheses and may hold spaces and ')'; the fields
    // after the last ')' start with field 3 (state).
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let ticks =
        |field: Option<&str>| field?.parse::<u64>().ok().map(|ticks| Duration::from_millis(ticks * 1000 / USER_HZ));
    let user = ticks(fields.next())?;
    let system = ticks(fields.next())?;
    Some(CpuTime { user, system })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime() {
        let stat = "4242 (hakken (x) y) R 1 4242 4242 0 -1 4194560 1234 0 0 0 250 37 0 0 20 0 3 0 100 0 0";
        let cpu = parse_stat(stat).expect("parses");
        assert_eq!(cpu, CpuTime { user: Duration::from_millis(2500), system: Duration::from_millis(370) });
        assert_eq!(parse_stat("garbage"), None);
        let now = CpuTime::now().expect("this is Linux");
        assert_eq!(now.since(now).total(), Duration::ZERO);
        let mine = CpuTime::of_pid(std::process::id()).expect("this process");
        assert!(mine.total() >= now.total());
        assert!(CpuTime::of_pid(u32::MAX).is_err());
    }
}
