//! What a stage's command cost: CPU time read from `/proc` after the command exited and before
//! it is reaped (a zombie keeps its accounting), so no `unsafe` `wait4` is needed.

use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};

/// Block until `pid` (a child of this process) has exited, without reaping it, then return
/// its user + system CPU time and that of the children it waited for, in milliseconds.
/// `None` when the times cannot be read (no `/proc`, or the wait was interrupted); the
/// caller still reaps the child with `Child::wait`.
pub fn cpu_ms_at_exit(pid: i32) -> Option<u64> {
    let pid = Pid::from_raw(pid)?;
    loop {
        match waitid(WaitId::Pid(pid), WaitIdOptions::EXITED | WaitIdOptions::NOWAIT) {
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return None,
        }
    }
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())).ok()?;
    cpu_ms_of_stat(&stat, rustix::param::clock_ticks_per_second())
}

/// utime + stime + cutime + cstime (fields 14–17 of `proc_pid_stat(5)`) in milliseconds. The
/// command name (field 2) may hold spaces and parentheses, so fields are counted after the
/// last `)`.
pub fn cpu_ms_of_stat(stat: &str, ticks_per_second: u64) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, so field N is at index N - 3.
    let ticks: u64 = fields.get(11..15)?.iter().map(|f| f.parse::<u64>().ok()).sum::<Option<u64>>()?;
    (ticks_per_second > 0).then(|| ticks.saturating_mul(1000) / ticks_per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_four_times_after_the_name() {
        let stat = "4242 (py (x) y) Z 1 4242 4242 0 -1 4194820 100 0 0 0 150 25 30 5 20 0 1 0 1 0 0";
        assert_eq!(cpu_ms_of_stat(stat, 100), Some(2100));
        assert_eq!(cpu_ms_of_stat("4242 (x) Z 1", 100), None, "too few fields");
        assert_eq!(cpu_ms_of_stat("no name here", 100), None);
    }

    #[test]
    fn a_busy_child_is_charged_its_cpu() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let cpu = cpu_ms_at_exit(child.id() as i32).expect("readable");
        assert!(child.wait().unwrap().success());
        assert!(cpu >= 10, "a loop of 200k shell iterations costs CPU, got {cpu} ms");
    }
}
