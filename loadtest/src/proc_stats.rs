//! CPU time and peak memory of this process, from `/proc`.

use std::path::Path;

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// User + system CPU seconds of a process, from its `/proc/<pid>/stat`.
pub fn cpu_seconds_of(stat: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(stat).ok()?;
    // utime and stime are the 12th and 13th fields after the `)` that ends the command name.
    let rest = text.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// CPU seconds of this process so far.
pub fn cpu_seconds() -> f64 {
    cpu_seconds_of(Path::new("/proc/self/stat")).unwrap_or(f64::NAN)
}

/// Peak resident set size of this process (`VmHWM`), in bytes.
pub fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_and_memory() {
        let busy: u64 = (0..2_000_000u64).map(|i| i.wrapping_mul(i) % 7).sum();
        assert!(busy > 0);
        assert!(cpu_seconds() >= 0.0);
        assert!(peak_rss_bytes() > 1024 * 1024, "a process uses more than 1 MiB");
    }
}
