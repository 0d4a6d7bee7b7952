#[test]
fn scratch() {
    use super::*;
    let mut c = std::process::Command::new(r"C:\windows\system32\cmd.exe");
    c.args(["/c", "ping -n 3 127.0.0.1 >NUL"]);
    let spec = Spec { id: "scratch-1".into(), limits: crate::Limits::default(), backend: None };
    let g = Group::create(&spec).unwrap();
    let child = g.spawn_leader(c).unwrap();
    let pid = child.id();
    let h = process::open(pid);
    eprintln!("open: {:?}", h.as_ref().err());
    let h = h.unwrap();
    eprintln!("contains: {:?}", g.job.contains(handle::raw(&h)));
    eprintln!("image: {:?}", process::image(handle::raw(&h)));
    eprintln!("image err: {:?}", std::io::Error::last_os_error());
    eprintln!("cmdline: {:?}", process::command_line(handle::raw(&h)));
    eprintln!("parent: {:?}", process::parent(handle::raw(&h)));
    eprintln!("private: {:?}", process::private_bytes(handle::raw(&h)));
    eprintln!("pids: {:?}", g.job.pids());
    eprintln!("acct: {:?}", g.job.accounting());
    eprintln!("ext peak: {:?}", g.job.peak_memory());
    let st = g.job.set_cpu_rate(0.5);
    eprintln!("cpu rate: {st:?}");
    let q: std::io::Result<windows_sys::Win32::System::JobObjects::JOBOBJECT_CPU_RATE_CONTROL_INFORMATION> = g.job.query(windows_sys::Win32::System::JobObjects::JobObjectCpuRateControlInformation);
    eprintln!("cpu rate read: {:?}", q.map(|v| unsafe { v.Anonymous.CpuRate }));
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed() < Duration::from_secs(5) {
        let m = g.port.wait(Some(Duration::from_millis(100))).unwrap();
        if !m.is_empty() { eprintln!("{:?} {m:?}", t.elapsed()); }
        n += 1;
        if g.is_empty() { break; }
    }
    eprintln!("members {:?}", lock(&g.st).members.keys().collect::<Vec<_>>());
    let _ = n;
    eprintln!("leader: {:?}", g.leader_exit(Duration::ZERO));
    eprintln!("console {}", console::has_console());
    let t = Instant::now();
    let mut s = HashSet::new(); s.insert(pid);
    eprintln!("close windows {} in {:?}", console::close_windows(&s), t.elapsed());
}
