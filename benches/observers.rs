//! Cost of the observers, beside node_exporter and sysinfo measured in the same run.
//!
//! Criterion group `sample` (wall time per call, single thread):
//! - `host_and_process`: one genscope host + process pass (what the host thread does each tick).
//! - `host`, `process`: the two halves.
//! - `gpu_fake_1`, `gpu_fake_8`: one GPU cycle over the fake backend with 1 and 8 devices (the
//!   sampler's own cost; NVML's per-call cost is measured on a GPU machine).
//! - `sysinfo_equivalent`: the closest sysinfo refresh (memory, CPU usage, networks, disks, this
//!   process), the crate-only alternative.
//! - `node_exporter_minimal`, `node_exporter_default`: one scrape of a node_exporter started by
//!   the bench (cpu, meminfo, loadavg only; then its default collectors), wall time seen by the
//!   scraper.
//!
//! Before criterion runs, a CPU-time report (`cpu:` lines): CPU per genscope sample from the
//! thread CPU clock over many passes; node_exporter's CPU per scrape from its `/proc/<pid>/stat`
//! utime + stime over 500 scrapes; and the steady overhead of running `Observers` (host thread
//! on-CPU time from its `schedstat` over 3 s at a 100 ms interval, scaled to the 1 s default).

use std::hint::black_box;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use genscope::gpu::{FakeDevice, FakeGpu, GpuSampler};
use genscope::observers::{HostSampler, Observers, ProcessSampler};

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer, constant clock id.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn ticks_to_duration(ticks: u64) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Duration::from_secs_f64(ticks as f64 / hz)
}

/// utime + stime of a process or thread from its `stat` file.
fn stat_cpu(path: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(path).ok()?;
    let after = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks_to_duration(ticks))
}

fn node_exporter_path() -> Option<&'static str> {
    [
        "/usr/bin/prometheus-node-exporter",
        "/usr/local/bin/node_exporter",
        "/usr/bin/node_exporter",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
}

struct NodeExporter {
    child: Child,
    addr: SocketAddr,
}

impl NodeExporter {
    fn start(minimal: bool) -> Option<NodeExporter> {
        let bin = node_exporter_path()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"));
        if minimal {
            cmd.args([
                "--collector.disable-defaults",
                "--collector.cpu",
                "--collector.meminfo",
                "--collector.loadavg",
            ]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().ok()?;
        for _ in 0..100 {
            if TcpStream::connect(addr).is_ok() {
                let ne = NodeExporter { child, addr };
                // Warm up (Go runtime, first-scrape allocations).
                for _ in 0..20 {
                    ne.scrape();
                }
                return Some(ne);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn scrape(&self) -> usize {
        let Ok(mut s) = TcpStream::connect(self.addr) else {
            return 0;
        };
        let _ = write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        let mut body = Vec::with_capacity(256 * 1024);
        let _ = s.read_to_end(&mut body);
        body.len()
    }

    fn cpu(&self) -> Option<Duration> {
        stat_cpu(&format!("/proc/{}/stat", self.child.id()))
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cpu_per_call(n: u32, mut f: impl FnMut()) -> Duration {
    let start = thread_cpu();
    for _ in 0..n {
        f();
    }
    (thread_cpu() - start) / n
}

fn cpu_report() {
    let mut host = HostSampler::new(false);
    let mut process = ProcessSampler::new();
    let both = cpu_per_call(2000, || {
        black_box(host.sample());
        black_box(process.sample());
    });
    let host_only = cpu_per_call(2000, || {
        black_box(host.sample());
    });
    let process_only = cpu_per_call(2000, || {
        black_box(process.sample());
    });
    println!("cpu: genscope host+process sample {both:?} per pass");
    println!("cpu: genscope host sample {host_only:?}, process sample {process_only:?}");
    let mut gpu = GpuSampler::new(
        Box::new(FakeGpu::new(vec![FakeDevice::typical(0)])),
        Duration::from_secs(10),
        Duration::from_secs(600),
    );
    let g = cpu_per_call(5000, || {
        let _ = black_box(gpu.sample());
    });
    println!("cpu: genscope GPU sample, fake backend, 1 device {g:?}");
    for minimal in [true, false] {
        let label = if minimal {
            "minimal (cpu, meminfo, loadavg)"
        } else {
            "default collectors"
        };
        match NodeExporter::start(minimal) {
            Some(ne) => {
                let before = ne.cpu().unwrap_or_default();
                let wall = Instant::now();
                let mut bytes = 0;
                for _ in 0..500 {
                    bytes = ne.scrape();
                }
                let wall = wall.elapsed() / 500;
                let cpu = (ne.cpu().unwrap_or_default() - before) / 500;
                println!(
                    "cpu: node_exporter {label}: {cpu:?} CPU per scrape ({wall:?} wall, {bytes} bytes); genscope host+process pass = {:.3}x of it",
                    both.as_secs_f64() / cpu.as_secs_f64().max(1e-9)
                );
            }
            None => println!("cpu: node_exporter not installed; no baseline"),
        }
    }
    // Steady state: the host thread's own CPU over 3 s at 100 ms, per pass and at the 1 s default.
    let meter = opentelemetry::metrics::MeterProvider::meter(
        &opentelemetry_sdk::metrics::SdkMeterProvider::builder().build(),
        "bench",
    );
    let observers = Observers::builder()
        .host_interval(Some(Duration::from_millis(100)))
        .gpu_interval(None)
        .start(&meter);
    // The first second (thread start, first mount list) is left out: steady state only.
    let tid = || {
        std::fs::read_dir("/proc/self/task").ok().and_then(|dir| {
            dir.flatten().find_map(|t| {
                let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
                comm.starts_with("genscope-host")
                    .then(|| t.file_name().to_string_lossy().into_owned())
            })
        })
    };
    // schedstat's first field is on-CPU nanoseconds (stat's ticks are 10 ms: too coarse here).
    let on_cpu = |t: &str| {
        let text = std::fs::read_to_string(format!("/proc/self/task/{t}/schedstat")).ok()?;
        Some(Duration::from_nanos(
            text.split_whitespace().next()?.parse().ok()?,
        ))
    };
    let passes = || observers.history().window(Duration::MAX).host.len();
    std::thread::sleep(Duration::from_millis(1000));
    if let Some(t) = tid() {
        let (cpu0, passes0) = (on_cpu(&t).unwrap_or_default(), passes());
        std::thread::sleep(Duration::from_millis(3000));
        let (cpu1, passes1) = (on_cpu(&t).unwrap_or_default(), passes());
        let n = (passes1 - passes0).max(1);
        let per_pass = (cpu1 - cpu0) / n as u32;
        println!(
            "cpu: Observers host thread {:?} over {n} steady passes = {per_pass:?} per pass; at the 1 s default {:.3}% of one core",
            cpu1 - cpu0,
            per_pass.as_secs_f64() * 100.0
        );
    }
    drop(observers);
}

fn bench_sample(c: &mut Criterion) {
    let mut g = c.benchmark_group("sample");
    let mut host = HostSampler::new(false);
    let mut process = ProcessSampler::new();
    g.bench_function("host_and_process", |b| {
        b.iter(|| {
            black_box(host.sample());
            black_box(process.sample());
        })
    });
    g.bench_function("host", |b| b.iter(|| black_box(host.sample())));
    g.bench_function("process", |b| b.iter(|| black_box(process.sample())));
    for n in [1u32, 8] {
        let mut gpu = GpuSampler::new(
            Box::new(FakeGpu::new((0..n).map(FakeDevice::typical).collect())),
            Duration::from_secs(10),
            Duration::from_secs(600),
        );
        g.bench_function(format!("gpu_fake_{n}"), |b| {
            b.iter(|| black_box(gpu.sample()))
        });
    }
    let pid = sysinfo::get_current_pid().expect("own pid");
    let mut sys = sysinfo::System::new().expect("sysinfo");
    let mut networks = sysinfo::Networks::new_with_refreshed_list().expect("networks");
    let mut disks = sysinfo::Disks::new_with_refreshed_list().expect("disks");
    g.bench_function("sysinfo_equivalent", |b| {
        b.iter(|| {
            sys.refresh_memory();
            sys.refresh_cpu_usage();
            sys.refresh_processes_specifics(
                sysinfo::ProcessesToUpdate::Some(&[pid]),
                false,
                sysinfo::ProcessRefreshKind::nothing()
                    .with_cpu()
                    .with_memory()
                    .without_tasks(),
            );
            networks.refresh(false);
            disks.refresh(false);
            black_box(sysinfo::System::load_average().ok());
        })
    });
    for minimal in [true, false] {
        if let Some(ne) = NodeExporter::start(minimal) {
            let name = if minimal {
                "node_exporter_minimal"
            } else {
                "node_exporter_default"
            };
            g.bench_function(name, |b| b.iter(|| black_box(ne.scrape())));
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_sample
}

fn main() {
    cpu_report();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
