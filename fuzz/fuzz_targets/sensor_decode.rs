//! The sensor's packet pipeline on arbitrary frames: the first byte picks the link type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use teiten_sensor::{LinkType, Monitored, Processor};

fuzz_target!(|data: &[u8]| {
    let Some((&first, frame)) = data.split_first() else {
        return;
    };
    let link = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::Raw,
        LinkType::Null,
    ][first as usize % 5];
    let _ = teiten_sensor::decode(link, 0, frame);
    let monitored = Monitored::new(&["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]);
    let mut p = Processor::new(link, Some(monitored));
    let _ = p.handle(0, frame);
});
