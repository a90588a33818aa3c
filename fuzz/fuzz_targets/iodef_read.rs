//! Fuzz the IODEF reader (strict, lenient, streaming) and the validator: never a panic, and
//! whatever loads as a valid model writes and reads back to the same model.
#![no_main]

use iodef::{Document, ReadOptions, StreamReader, ValidateOptions, WriteOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = iodef::Limits {
        max_bytes: 1 << 20,
        max_elements: 100_000,
        ..iodef::Limits::default()
    };
    for lenient in [false, true] {
        let opts = ReadOptions { lenient, limits };
        if let Ok(loaded) = Document::from_slice(data, &opts) {
            if loaded.document.check().is_empty() {
                let xml = loaded
                    .document
                    .to_xml(WriteOptions::default())
                    .expect("a model that checks clean must write");
                let back = Document::from_slice(xml.as_bytes(), &ReadOptions::strict())
                    .expect("our own output must read back");
                assert_eq!(
                    back.document, loaded.document,
                    "round trip changed the model"
                );
            }
        }
        if let Ok(mut r) = StreamReader::new(data, &opts) {
            while let Ok(Some(_)) = r.next_item() {}
        }
    }
    let _ = iodef::validate(
        data,
        &ValidateOptions {
            expect: None,
            limits,
        },
    );
});
