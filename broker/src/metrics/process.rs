//! Process figures read from `/proc/self` at scrape time (Linux; elsewhere they are left
//! out): resident memory, open file descriptors, CPU seconds, threads, start time.

use super::text::{Kind, Page};

/// What `/proc/self` says about this process now.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    pub resident_memory_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub cpu_seconds: f64,
    pub threads: u64,
}

/// Clock ticks per second for `/proc/<pid>/stat` times.
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Reads the figures; `None` where `/proc` is missing.
pub fn read() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let mut stats = parse_stat(&stat, clock_ticks_per_second())?;
    stats.resident_memory_bytes = parse_status_kb(&status, "VmRSS:").unwrap_or(0) * 1024;
    stats.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    stats.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| parse_max_open_files(&limits))
        .unwrap_or(0);
    Some(stats)
}

/// utime (14), stime (15) and num_threads (20) of `/proc/self/stat`, counted after the
/// `(comm)` field, which may itself contain spaces.
fn parse_stat(stat: &str, ticks_per_second: f64) -> Option<ProcessStats> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // fields[0] is field 3 (state).
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let cpu_ticks = field(14)? + field(15)?;
    Some(ProcessStats {
        cpu_seconds: cpu_ticks as f64 / ticks_per_second,
        threads: field(20)?,
        ..ProcessStats::default()
    })
}

fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

fn parse_max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Writes the `runnel_process_*` families.
pub fn render(page: &mut Page, start_time_seconds: f64) {
    page.single(
        "runnel_process_start_time_seconds",
        Kind::Gauge,
        "Start time of the process since the Unix epoch",
        start_time_seconds,
    );
    let Some(stats) = read() else {
        return;
    };
    page.single(
        "runnel_process_resident_memory_bytes",
        Kind::Gauge,
        "Resident set size",
        stats.resident_memory_bytes as f64,
    );
    page.single(
        "runnel_process_open_fds",
        Kind::Gauge,
        "Open file descriptors",
        stats.open_fds as f64,
    );
    page.single(
        "runnel_process_max_fds",
        Kind::Gauge,
        "File descriptor limit",
        stats.max_fds as f64,
    );
    page.single(
        "runnel_process_cpu_seconds_total",
        Kind::Counter,
        "User and system CPU time used",
        stats.cpu_seconds,
    );
    page.single(
        "runnel_process_threads",
        Kind::Gauge,
        "Operating system threads",
        stats.threads as f64,
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_command_name() {
        let stat = "42 (runnel broker) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 \
                    1234 1000 10 18446744073709551615";
        let stats = parse_stat(stat, 100.0).unwrap();
        assert_eq!(stats.cpu_seconds, 3.0);
        assert_eq!(stats.threads, 7);
    }

    #[test]
    fn reads_this_process() {
        let stats = read().unwrap();
        assert!(stats.resident_memory_bytes > 0);
        assert!(stats.open_fds > 0);
        assert!(stats.threads >= 1);
    }
}
