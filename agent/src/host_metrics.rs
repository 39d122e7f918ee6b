//! Host and process metrics from `sysinfo`, under the OpenTelemetry semantic-convention names.
//!
//! In: the machine and this process, read when the meter provider collects (every
//! `metrics_interval`, 10 s by default). Out: observable instruments on the global meter:
//! `system.cpu.utilization` (0..1), `system.cpu.load_average.1m`, `system.memory.usage` and
//! `system.paging.usage` (by state), `system.memory.limit`, `system.filesystem.usage` (by mount
//! point and state), `system.network.io` (by direction), `process.cpu.time` (s) and
//! `process.memory.usage` (resident bytes). One snapshot serves every instrument of a collection.

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use sysinfo::{Disks, Networks, Pid, ProcessesToUpdate, System};

/// Readings of one collection.
#[derive(Clone, Debug, Default)]
struct Snapshot {
    cpu_utilization: f64,
    load_1m: f64,
    memory_used: u64,
    memory_total: u64,
    swap_used: u64,
    swap_total: u64,
    /// (mount point, used bytes, free bytes)
    filesystems: Vec<(String, u64, u64)>,
    network_received: u64,
    network_transmitted: u64,
    process_cpu_s: f64,
    process_resident: u64,
}

struct Sampler {
    system: System,
    disks: Option<Disks>,
    networks: Option<Networks>,
    pid: Option<Pid>,
    taken: Option<Instant>,
    snapshot: Snapshot,
}

impl Sampler {
    /// The current readings, refreshed at most once a second however many instruments ask.
    fn snapshot(&mut self) -> Snapshot {
        if self
            .taken
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return self.snapshot.clone();
        }
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        let mut s = Snapshot {
            cpu_utilization: f64::from(self.system.global_cpu_usage()) / 100.0,
            load_1m: System::load_average().map_or(0.0, |l| l.one),
            memory_used: self.system.used_memory(),
            memory_total: self.system.total_memory(),
            swap_used: self.system.used_swap(),
            swap_total: self.system.total_swap(),
            ..Snapshot::default()
        };
        if let Some(disks) = &mut self.disks {
            disks.refresh(true);
            s.filesystems = disks
                .iter()
                .map(|d| {
                    let (total, free) = (d.total_space(), d.available_space());
                    (
                        d.mount_point().display().to_string(),
                        total.saturating_sub(free),
                        free,
                    )
                })
                .collect();
        }
        if let Some(networks) = &mut self.networks {
            networks.refresh(true);
            for (_, data) in networks.iter() {
                s.network_received += data.total_received();
                s.network_transmitted += data.total_transmitted();
            }
        }
        if let Some(pid) = self.pid {
            self.system
                .refresh_processes(ProcessesToUpdate::Some(&[pid]), false);
            if let Some(p) = self.system.process(pid) {
                s.process_cpu_s = p.accumulated_cpu_time() as f64 / 1000.0;
                s.process_resident = p.memory();
            }
        }
        self.taken = Some(Instant::now());
        self.snapshot = s.clone();
        s
    }
}

/// Registers the instruments on `meter`. Does nothing where `sysinfo` cannot read the system.
pub fn register(meter: &Meter) {
    let Ok(system) = System::new() else {
        tracing::warn!("host metrics unavailable: sysinfo cannot read this system");
        return;
    };
    let sampler = Arc::new(Mutex::new(Sampler {
        system,
        disks: Disks::new_with_refreshed_list().ok(),
        networks: Networks::new_with_refreshed_list().ok(),
        pid: sysinfo::get_current_pid().ok(),
        taken: None,
        snapshot: Snapshot::default(),
    }));
    let read = move || {
        sampler
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .snapshot()
    };
    let state = |s: &'static str| KeyValue::new("system.memory.state", s);

    let r = read.clone();
    meter
        .f64_observable_gauge("system.cpu.utilization")
        .with_unit("1")
        .with_callback(move |o| o.observe(r().cpu_utilization, &[]))
        .build();
    let r = read.clone();
    meter
        .f64_observable_gauge("system.cpu.load_average.1m")
        .with_unit("{thread}")
        .with_callback(move |o| o.observe(r().load_1m, &[]))
        .build();
    let r = read.clone();
    meter
        .u64_observable_gauge("system.memory.usage")
        .with_unit("By")
        .with_callback(move |o| {
            let s = r();
            o.observe(s.memory_used, &[state("used")]);
            o.observe(
                s.memory_total.saturating_sub(s.memory_used),
                &[state("free")],
            );
        })
        .build();
    let r = read.clone();
    meter
        .u64_observable_gauge("system.memory.limit")
        .with_unit("By")
        .with_callback(move |o| o.observe(r().memory_total, &[]))
        .build();
    let r = read.clone();
    meter
        .u64_observable_gauge("system.paging.usage")
        .with_unit("By")
        .with_callback(move |o| {
            let s = r();
            o.observe(s.swap_used, &[KeyValue::new("system.paging.state", "used")]);
            let free = s.swap_total.saturating_sub(s.swap_used);
            o.observe(free, &[KeyValue::new("system.paging.state", "free")]);
        })
        .build();
    let r = read.clone();
    meter
        .u64_observable_gauge("system.filesystem.usage")
        .with_unit("By")
        .with_callback(move |o| {
            for (mount, used, free) in r().filesystems {
                let at = KeyValue::new("system.filesystem.mountpoint", mount);
                o.observe(
                    used,
                    &[at.clone(), KeyValue::new("system.filesystem.state", "used")],
                );
                o.observe(
                    free,
                    &[at, KeyValue::new("system.filesystem.state", "free")],
                );
            }
        })
        .build();
    let r = read.clone();
    meter
        .u64_observable_counter("system.network.io")
        .with_unit("By")
        .with_callback(move |o| {
            let s = r();
            o.observe(
                s.network_received,
                &[KeyValue::new("network.io.direction", "receive")],
            );
            o.observe(
                s.network_transmitted,
                &[KeyValue::new("network.io.direction", "transmit")],
            );
        })
        .build();
    let r = read.clone();
    meter
        .f64_observable_counter("process.cpu.time")
        .with_unit("s")
        .with_callback(move |o| o.observe(r().process_cpu_s, &[]))
        .build();
    meter
        .u64_observable_gauge("process.memory.usage")
        .with_unit("By")
        .with_callback(move |o| o.observe(read().process_resident, &[]))
        .build();
}
