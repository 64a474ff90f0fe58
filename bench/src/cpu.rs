//! CPU time per gigabyte moved, of the bench process and of the broker, per phase.
//!
//! Throughput on a shared machine moves with the host (this project's acks=1 produce runs
//! ranged from 0.93 to 1.63 GB/s across days); the CPU-seconds a gigabyte costs moves much
//! less, and on a machine whose cores are all busy it is what sets the throughput. Reported beside the
//! rates so a run reads as "how much work per byte" as well as "how fast".

use std::time::Duration;

use serde::Serialize;

/// CPU time of one phase, in seconds, and per 10⁹ bytes moved in it.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseCpu {
    /// `produce`, `consume` (the catch-up read) or `e2e` (producers and consumers together).
    pub phase: &'static str,
    /// Bytes the phase moved: acknowledged (produce, e2e) or received (consume).
    pub bytes: u64,
    /// This process: the producers and consumers (user + system time).
    pub bench_cpu_seconds: f64,
    /// The broker (spawned, or `--broker-pid`), user + system time of all its threads;
    /// absent when its pid is unknown or its times cannot be read (Linux only).
    pub broker_cpu_seconds: Option<f64>,
    pub bench_cpu_seconds_per_gb: Option<f64>,
    pub broker_cpu_seconds_per_gb: Option<f64>,
}

/// The CPU times at a phase's start.
pub struct CpuClock {
    broker_pid: Option<u32>,
    bench_start: Option<Duration>,
    broker_start: Option<Duration>,
}

impl CpuClock {
    pub fn start(broker_pid: Option<u32>) -> CpuClock {
        CpuClock {
            broker_pid,
            bench_start: own_cpu_time(),
            broker_start: broker_pid.and_then(process_cpu_time),
        }
    }

    /// The phase's CPU since [`Self::start`], for `bytes` moved.
    pub fn stop(self, phase: &'static str, bytes: u64) -> PhaseCpu {
        let since = |start: Option<Duration>, now: Option<Duration>| {
            Some(now?.saturating_sub(start?).as_secs_f64())
        };
        let bench = since(self.bench_start, own_cpu_time()).unwrap_or(0.0);
        let broker = since(
            self.broker_start,
            self.broker_pid.and_then(process_cpu_time),
        );
        let per_gb = |seconds: f64| (bytes > 0).then(|| seconds * 1e9 / bytes as f64);
        PhaseCpu {
            phase,
            bytes,
            bench_cpu_seconds: bench,
            broker_cpu_seconds: broker,
            bench_cpu_seconds_per_gb: per_gb(bench),
            broker_cpu_seconds_per_gb: broker.and_then(per_gb),
        }
    }
}

/// User + system time of this process, all threads (`getrusage(RUSAGE_SELF)`).
fn own_cpu_time() -> Option<Duration> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the pointer it is given and reads nothing.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: a successful getrusage filled the struct (zeroed before, so no field is
    // uninitialised either way).
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| {
        let seconds = u64::try_from(t.tv_sec).ok()?;
        let micros = u64::try_from(t.tv_usec).ok()?;
        Some(Duration::from_secs(seconds) + Duration::from_micros(micros))
    };
    Some(time(usage.ru_utime)? + time(usage.ru_stime)?)
}

/// User + system time of process `pid`, all threads: fields 14 and 15 of `/proc/<pid>/stat`,
/// in clock ticks (Linux only; `None` elsewhere or when the process is gone).
fn process_cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu_ticks(&stat).and_then(ticks_to_duration)
}

/// utime + stime from a `/proc/<pid>/stat` line. The command name (field 2, in parentheses)
/// may itself hold spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace();
    // After the name: state (3), ppid (4), … utime is field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

fn ticks_to_duration(ticks: u64) -> Option<Duration> {
    // SAFETY: sysconf reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|&t| t > 0)?;
    Some(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
        assert_eq!(parse_stat_cpu_ticks("4242 (x) S 1"), None);
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn a_phase_counts_this_process_and_a_broker_pid() {
        let clock = CpuClock::start(Some(std::process::id()));
        // Burn a little CPU so both readings move.
        let mut x = 0u64;
        let until = std::time::Instant::now() + Duration::from_millis(50);
        while std::time::Instant::now() < until {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let cpu = clock.stop("produce", 2_000_000_000);
        assert!(cpu.bench_cpu_seconds > 0.0);
        let broker = cpu
            .broker_cpu_seconds
            .expect("this process read as the broker");
        assert!(broker > 0.0);
        let per_gb = cpu.bench_cpu_seconds_per_gb.unwrap();
        assert!((per_gb - cpu.bench_cpu_seconds / 2.0).abs() < 1e-9);
        let none = CpuClock::start(None).stop("consume", 0);
        assert_eq!(none.broker_cpu_seconds, None);
        assert_eq!(none.bench_cpu_seconds_per_gb, None);
    }
}
