//! Packet sources (a live interface through libpcap's TPACKET_V3 ring, or a pcap/pcapng file)
//! and the per-packet pipeline they share: decode, keep traffic to the monitored prefixes,
//! classify.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pcap::{Active, Capture, Direction, Offline};
use teiten_wire::Event;

use crate::classify::classify;
use crate::config::CaptureConfig;
use crate::decode::{decode, LinkType};
use crate::filter::Monitored;
use crate::metrics::Metrics;

/// Why a packet source could not be opened or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The interface cannot be captured on (unknown, down, no permission, ...).
    #[error("cannot capture on interface {interface}: {source}")]
    Open {
        /// The interface.
        interface: String,
        /// libpcap's error.
        source: pcap::Error,
    },
    /// The file cannot be read as pcap or pcapng.
    #[error("cannot read capture file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// libpcap's error.
        source: pcap::Error,
    },
    /// The capture's link layer is not one the decoder handles.
    #[error("{what}: unsupported link type {dlt} ({name}); supported: Ethernet, Linux cooked v1/v2, raw IP, BSD loopback")]
    LinkType {
        /// The interface or file.
        what: String,
        /// libpcap's DLT number.
        dlt: i32,
        /// Its name.
        name: String,
    },
    /// Setting up the kernel side (filter, direction, fanout) failed.
    #[error("interface {interface}: {what}: {message}")]
    Setup {
        /// The interface.
        interface: String,
        /// The step that failed.
        what: &'static str,
        /// The error.
        message: String,
    },
    /// Reading packets failed mid-way.
    #[error("{what}: read failed: {source}")]
    Read {
        /// The interface or file.
        what: String,
        /// libpcap's error.
        source: pcap::Error,
    },
}

/// Events are handed on in chunks of at most this many.
pub(crate) const CHUNK: usize = 4096;
/// A chunk waits at most this long before it is handed on.
const CHUNK_AGE: Duration = Duration::from_millis(50);

/// Per-thread counters, added to the shared [`Metrics`] once per chunk.
#[derive(Default)]
struct Counts {
    packets: u64,
    events: u64,
    filtered: u64,
    malformed: u64,
}

/// The per-packet pipeline: decode, filter, classify.
pub struct Processor {
    link: LinkType,
    monitored: Option<Monitored>,
    counts: Counts,
}

impl Processor {
    /// A pipeline for one source; `monitored: None` keeps every IP packet (troubleshooting).
    pub fn new(link: LinkType, monitored: Option<Monitored>) -> Processor {
        Processor {
            link,
            monitored,
            counts: Counts::default(),
        }
    }

    /// Turns one captured frame into an event, or counts why not.
    #[inline]
    pub fn handle(&mut self, ts_us: i64, frame: &[u8]) -> Option<Event> {
        self.counts.packets += 1;
        match decode(self.link, ts_us, frame) {
            Ok(Some(mut ev)) => {
                if let Some(m) = &self.monitored {
                    if !m.contains(ev.dst) {
                        self.counts.filtered += 1;
                        return None;
                    }
                }
                classify(&mut ev);
                self.counts.events += 1;
                Some(ev)
            }
            Ok(None) => {
                self.counts.filtered += 1;
                None
            }
            Err(e) => {
                self.counts.malformed += 1;
                tracing::trace!(error = %e, "Malformed packet skipped");
                None
            }
        }
    }

    /// Adds this pipeline's counts to the shared metrics and resets them.
    pub fn publish(&mut self, metrics: &Metrics) {
        let c = std::mem::take(&mut self.counts);
        metrics.packets_captured.inc_by(c.packets);
        metrics.events_recorded.inc_by(c.events);
        metrics.filtered.inc_by(c.filtered);
        metrics.malformed.inc_by(c.malformed);
    }
}

// time_t and suseconds_t are i64 on the 64-bit Linux targets the sensor runs on; the
// conversion keeps it compiling where they are narrower.
#[allow(clippy::useless_conversion)]
fn ts_us(h: &pcap::PacketHeader) -> i64 {
    i64::from(h.ts.tv_sec) * 1_000_000 + i64::from(h.ts.tv_usec)
}

/// Reads a pcap or pcapng file through the pipeline, handing events on in chunks; with
/// `progress`, shows the bytes read on a bar (when standard error is a terminal).
pub(crate) fn read_file(
    path: &Path,
    monitored: Option<Monitored>,
    metrics: &Metrics,
    stop: &AtomicBool,
    progress: bool,
    mut emit: impl FnMut(Vec<Event>),
) -> Result<(), CaptureError> {
    let what = path.display().to_string();
    let mut cap: Capture<Offline> =
        Capture::from_file(path).map_err(|source| CaptureError::File {
            path: what.clone(),
            source,
        })?;
    let link = link_type(&what, cap.get_datalink())?;
    let mut p = Processor::new(link, monitored);
    let mut chunk = Vec::with_capacity(CHUNK);
    // Bytes read of the file, as the pcap format counts them (a 24-byte file header, then a
    // 16-byte record header and the captured bytes per packet; pcapng blocks are a little
    // larger, so its bar lags until the end).
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bar = if progress {
        teiten_service::progress::bytes(size, "reading")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut read: u64 = 24;
    let mut packets: u32 = 0;
    loop {
        match cap.next_packet() {
            Ok(pkt) => {
                read += 16 + u64::from(pkt.header.caplen);
                packets = packets.wrapping_add(1);
                if packets & 1023 == 0 {
                    bar.set_position(read.min(size));
                }
                if let Some(ev) = p.handle(ts_us(pkt.header), pkt.data) {
                    chunk.push(ev);
                    if chunk.len() == CHUNK {
                        p.publish(metrics);
                        emit(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)));
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                }
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(source) => {
                bar.finish_and_clear();
                p.publish(metrics);
                if !chunk.is_empty() {
                    emit(chunk);
                }
                return Err(CaptureError::Read { what, source });
            }
        }
    }
    bar.finish_and_clear();
    p.publish(metrics);
    if !chunk.is_empty() {
        emit(chunk);
    }
    Ok(())
}

fn link_type(what: &str, dlt: pcap::Linktype) -> Result<LinkType, CaptureError> {
    LinkType::from_dlt(dlt.0).ok_or_else(|| CaptureError::LinkType {
        what: what.to_owned(),
        dlt: dlt.0,
        name: dlt.get_name().unwrap_or_else(|_| "unknown".into()),
    })
}

/// Opens one live capture handle: a TPACKET_V3 ring with kernel timestamps, the kernel filter,
/// inbound direction and (when `fanout` is set) membership of a PACKET_FANOUT group.
pub(crate) fn open_live(
    interface: &str,
    cfg: &CaptureConfig,
    bpf: Option<&str>,
    fanout: Option<u16>,
) -> Result<Capture<Active>, CaptureError> {
    let open_err = |source| CaptureError::Open {
        interface: interface.to_owned(),
        source,
    };
    let setup = |what, message: String| CaptureError::Setup {
        interface: interface.to_owned(),
        what,
        message,
    };
    let mut cap = Capture::from_device(interface)
        .map_err(open_err)?
        .promisc(true)
        .snaplen(cfg.snaplen as i32)
        .buffer_size((cfg.ring_mb << 20) as i32)
        .timeout(100)
        .open()
        .map_err(open_err)?;
    if !cfg.include_outbound {
        cap.direction(Direction::In)
            .map_err(|e| setup("set inbound direction", e.to_string()))?;
    }
    if let Some(bpf) = bpf {
        cap.filter(bpf, true)
            .map_err(|e| setup("install kernel filter", format!("{e} (filter: {bpf})")))?;
    }
    if let Some(group) = fanout {
        join_fanout(cap.as_raw_fd(), group)
            .map_err(|e| setup("join PACKET_FANOUT", e.to_string()))?;
    }
    let cap = cap
        .setnonblock()
        .map_err(|e| setup("set non-blocking", e.to_string()))?;
    link_type(interface, cap.get_datalink())?;
    Ok(cap)
}

fn join_fanout(fd: i32, group: u16) -> std::io::Result<()> {
    const PACKET_FANOUT: libc::c_int = 18;
    const PACKET_FANOUT_HASH: u32 = 0;
    const PACKET_FANOUT_FLAG_DEFRAG: u32 = 0x8000;
    let arg: u32 = u32::from(group) | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16);
    // SAFETY: fd is the open packet socket of a live libpcap handle, and arg is a valid
    // c_int-sized option value whose size is passed alongside it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            PACKET_FANOUT,
            (&arg as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Captures from a live handle until `stop` is set, handing events on in chunks and keeping
/// the kernel's drop counter in `metrics`.
///
/// Packets are taken a ring block at a time (`pcap_dispatch`), as tcpdump does: one libpcap
/// call and one clock reading per block rather than per packet.
pub(crate) fn capture_live(
    interface: &str,
    mut cap: Capture<Active>,
    monitored: Option<Monitored>,
    metrics: &Metrics,
    stop: &AtomicBool,
    mut emit: impl FnMut(Vec<Event>),
) -> Result<(), CaptureError> {
    let link = link_type(interface, cap.get_datalink())?;
    let fd = cap.as_raw_fd();
    let mut p = Processor::new(link, monitored);
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut chunk_opened = Instant::now();
    let mut last_stats = Instant::now();
    let mut drops_seen = 0u64;
    let mut update_drops = |cap: &mut Capture<Active>| {
        if let Ok(s) = cap.stats() {
            let drops = u64::from(s.dropped);
            if drops > drops_seen {
                metrics.kernel_drops.inc_by(drops - drops_seen);
                drops_seen = drops;
            }
        }
    };
    let mut hand_on = |p: &mut Processor, chunk: &mut Vec<Event>| {
        p.publish(metrics);
        if !chunk.is_empty() {
            emit(std::mem::replace(chunk, Vec::with_capacity(CHUNK)));
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let was_empty = chunk.is_empty();
        // At most one chunk's worth per call, so a chunk never outgrows its capacity.
        let room = CHUNK - chunk.len();
        let got = cap.dispatch(Some(room), |pkt| {
            if let Some(ev) = p.handle(ts_us(pkt.header), pkt.data) {
                chunk.push(ev);
            }
        });
        match got {
            Ok(0) => {
                hand_on(&mut p, &mut chunk);
                if last_stats.elapsed() >= Duration::from_secs(1) {
                    last_stats = Instant::now();
                    update_drops(&mut cap);
                }
                wait_readable(fd, 100);
            }
            Ok(_) => {
                let now = Instant::now();
                if was_empty && !chunk.is_empty() {
                    chunk_opened = now;
                }
                if chunk.len() == CHUNK || now.duration_since(chunk_opened) >= CHUNK_AGE {
                    hand_on(&mut p, &mut chunk);
                }
                if now.duration_since(last_stats) >= Duration::from_secs(1) {
                    last_stats = now;
                    update_drops(&mut cap);
                }
            }
            Err(source) => {
                hand_on(&mut p, &mut chunk);
                return Err(CaptureError::Read {
                    what: interface.to_owned(),
                    source,
                });
            }
        }
    }
    hand_on(&mut p, &mut chunk);
    update_drops(&mut cap);
    Ok(())
}

fn wait_readable(fd: i32, ms: i32) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: pfd is a valid pollfd and we pass a count of exactly one.
    unsafe {
        libc::poll(&mut pfd, 1, ms);
    }
}
