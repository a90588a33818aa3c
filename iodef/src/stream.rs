//! Streaming: write one Incident or EventData at a time, read one EventData at a time.
//! Memory is bounded by the largest single EventData (and an Incident's header), never by
//! the document; [`Limits::max_unit_bytes`](crate::Limits::max_unit_bytes) and
//! [`Limits::max_unit_elements`](crate::Limits::max_unit_elements) bound those in turn.

use std::collections::VecDeque;
use std::io::{BufRead, Write};

use crate::check::{Checker, Ids};
use crate::convert::{self, Notes};
use crate::error::{Diagnostic, Error, Severity};
use crate::read::{Parser, ReadOptions, Unit, Version};
use crate::write::{WriteOptions, XmlOut};
use crate::{v1, v2, ScanEvent};

/// Writes an IODEF document incrementally, in constant memory.
///
/// The model is always v2; for a v1 document ([`StreamWriter::with_version`]) every unit is
/// converted on the fly and what v1 cannot carry is reported by
/// [`StreamWriter::conversion_notes`]. Each unit is checked before anything of it is written:
/// an invalid unit is refused with [`Error::Rejected`] and the output stays valid.
///
/// ```
/// use iodef::{v2, StreamWriter, WriteOptions};
/// # fn main() -> Result<(), iodef::Error> {
/// let mut w = StreamWriter::new(Vec::new(), &v2::Document::default(), WriteOptions::default())?;
/// let report = iodef::ScanReport::new("CSIRT-EXAMPLE", "2024-0001", iodef::DateTime::from_unix(1_700_000_000, 0).unwrap())
///     .csirt_email("csirt@example.org");
/// w.begin_incident(&report.incident())?;
/// w.write_event_data(&iodef::ScanEvent::tcp("192.0.2.7".parse().unwrap(), 40000, 22,
///     iodef::DateTime::from_unix(1_700_000_001, 0).unwrap()).event_data())?;
/// w.end_incident()?;
/// let xml = w.finish()?;
/// assert!(String::from_utf8(xml).unwrap().contains("<Port>22</Port>"));
/// # Ok(()) }
/// ```
pub struct StreamWriter<W: Write> {
    out: XmlOut<W>,
    text_rules: bool,
    version: Version,
    tail: Option<Tail>,
    incidents: usize,
    events: usize,
    doc_tail: Vec<v2::ExtensionData>,
    notes: Vec<Diagnostic>,
    /// The messages in `notes`, and how often each was left out as a repeat.
    noted: std::collections::HashMap<String, u64>,
    /// Notes with a new message left out past [`MAX_NOTES`].
    dropped_notes: u64,
    broken: bool,
    ids: Ids,
    /// The checkers' path stack, reused from unit to unit.
    segs: Vec<(&'static str, Option<usize>)>,
}

/// Most distinct conversion notes a [`StreamWriter`] keeps.
const MAX_NOTES: usize = 1000;

enum Tail {
    V2(Box<v2::Incident>),
    V1(Box<v1::Incident>),
}

impl<W: Write> StreamWriter<W> {
    /// Start a v2 document. `header` gives the root's attributes; incidents already in it are
    /// written at once, its `AdditionalData` at [`StreamWriter::finish`].
    pub fn new(out: W, header: &v2::Document, opts: WriteOptions) -> Result<Self, Error> {
        Self::with_version(out, header, Version::V2, opts)
    }

    /// Start a document of `version` (the model is v2; v1 output is converted unit by unit).
    pub fn with_version(
        out: W,
        header: &v2::Document,
        version: Version,
        opts: WriteOptions,
    ) -> Result<Self, Error> {
        let mut w = StreamWriter {
            out: XmlOut::new(out, opts, version.namespace()),
            text_rules: opts.text_rules,
            version,
            tail: None,
            incidents: 0,
            events: 0,
            doc_tail: header.additional_data.clone(),
            notes: Vec::new(),
            noted: std::collections::HashMap::new(),
            dropped_notes: 0,
            broken: false,
            ids: Ids::default(),
            segs: Vec::new(),
        };
        let mut c = Checker::new("");
        c.enter("IODEF-Document");
        for (i, x) in header.additional_data.iter().enumerate() {
            c.enter_at("AdditionalData", i);
            x.check(&mut c);
            c.leave();
        }
        w.accept(c)?;
        w.out.declaration()?;
        w.out.start("IODEF-Document")?;
        w.out.attr("xmlns", version.namespace())?;
        match version {
            Version::V2 => header.write_attrs(&mut w.out)?,
            Version::V1 => {
                let mut n = Notes::new("/IODEF-Document".into(), Version::V1);
                let head = v2::Document {
                    lang: header.lang.clone(),
                    format_id: header.format_id.clone(),
                    private_enum_name: header.private_enum_name.clone(),
                    private_enum_id: header.private_enum_id.clone(),
                    ..Default::default()
                };
                let conv = convert::to_v1(&head);
                n.notes.extend(conv.notes);
                if !header.additional_data.is_empty() {
                    n.lost("IODEF-Document.AdditionalData");
                }
                w.note(n.notes);
                conv.value.write_attrs(&mut w.out)?;
            }
        }
        for inc in &header.incident {
            w.write_incident(inc)?;
        }
        Ok(w)
    }

    /// Refuse a unit with errors; otherwise record its IDs (a duplicate of an ID written
    /// earlier is an error too) and IDREFs (resolved at [`StreamWriter::finish`]).
    fn accept(&mut self, mut c: Checker) -> Result<(), Error> {
        self.segs = c.take_segments();
        if c.diags.is_empty() && c.ids.is_empty() {
            // The common case: nothing to report, no IDs to record.
            return Ok(());
        }
        let unit = std::mem::take(&mut c.ids);
        let mut errors: Vec<Diagnostic> = c
            .diags
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        errors.extend(self.ids.duplicates(&unit));
        if !errors.is_empty() {
            return Err(Error::Rejected(errors));
        }
        self.ids.absorb(unit);
        Ok(())
    }

    fn checker(&mut self, root: &'static str) -> Checker {
        let c = Checker::with_segments(root, std::mem::take(&mut self.segs));
        if self.text_rules {
            c
        } else {
            c.schema_only()
        }
    }

    fn guard(&self) -> Result<(), Error> {
        if self.broken {
            Err(Error::Misuse(
                "a previous write failed; the output is incomplete",
            ))
        } else {
            Ok(())
        }
    }

    fn io<T>(&mut self, r: std::io::Result<T>) -> Result<T, Error> {
        r.map_err(|e| {
            self.broken = true;
            Error::Io(e)
        })
    }

    /// Write a whole Incident (with its EventData).
    pub fn write_incident(&mut self, incident: &v2::Incident) -> Result<(), Error> {
        self.begin_incident(incident)?;
        self.end_incident()
    }

    /// Start an Incident: writes everything up to and including `incident.event_data`; the
    /// parts that follow EventData (IndicatorData, History, AdditionalData) are written by
    /// [`StreamWriter::end_incident`]. Write more EventData in between.
    pub fn begin_incident(&mut self, incident: &v2::Incident) -> Result<(), Error> {
        self.guard()?;
        if self.tail.is_some() {
            return Err(Error::Misuse("begin_incident inside an open Incident"));
        }
        let path = format!("/IODEF-Document/Incident[{}]", self.incidents + 1);
        match self.version {
            Version::V2 => {
                let mut c = self.checker("/IODEF-Document");
                c.enter_at("Incident", self.incidents);
                incident.check(&mut c);
                self.accept(c)?;
                let r = write_incident_head_v2(&mut self.out, incident);
                self.io(r)?;
                let mut tail = incident.clone();
                tail.event_data = Vec::new();
                self.tail = Some(Tail::V2(Box::new(tail)));
            }
            Version::V1 => {
                let mut n = Notes::new(path, Version::V1);
                let v = convert::incident_v2_to_v1(incident, &mut n);
                let mut c = self.checker("/IODEF-Document");
                c.enter_at("Incident", self.incidents);
                v.check(&mut c);
                self.accept(c)?;
                self.note(n.notes);
                let r = write_incident_head_v1(&mut self.out, &v);
                self.io(r)?;
                let mut tail = v;
                tail.event_data = Vec::new();
                self.tail = Some(Tail::V1(Box::new(tail)));
            }
        }
        self.events = incident.event_data.len();
        self.incidents += 1;
        Ok(())
    }

    /// Write one EventData into the open Incident.
    pub fn write_event_data(&mut self, event: &v2::EventData) -> Result<(), Error> {
        self.guard()?;
        let mut c = self.checker("/IODEF-Document");
        c.enter_at("Incident", self.incidents.saturating_sub(1));
        c.enter_at("EventData", self.events);
        match &self.tail {
            None => return Err(Error::Misuse("write_event_data outside an Incident")),
            Some(Tail::V2(_)) => {
                event.check(&mut c);
                self.accept(c)?;
                let r = event.write(&mut self.out, "EventData");
                self.io(r)?;
            }
            Some(Tail::V1(_)) => {
                let path = format!(
                    "/IODEF-Document/Incident[{}]/EventData[{}]",
                    self.incidents,
                    self.events + 1
                );
                let mut n = Notes::new(path, Version::V1);
                let v = convert::event_data_v2_to_v1(event, &mut n);
                v.check(&mut c);
                self.accept(c)?;
                self.note(n.notes);
                let r = v.write(&mut self.out, "EventData");
                self.io(r)?;
            }
        }
        self.events += 1;
        Ok(())
    }

    /// Write one scan event into the open Incident: the same bytes as
    /// `write_event_data(&event.event_data())`, or with `icmp` (type, code) as
    /// `write_event_data(&event.icmp_event_data(type, code))`, but written directly, with
    /// nothing built or checked: a scan event is valid by construction. The hot path of
    /// per-packet daily files.
    pub fn write_scan_event(
        &mut self,
        event: &ScanEvent,
        icmp: Option<(u16, u16)>,
    ) -> Result<(), Error> {
        self.guard()?;
        let ip_protocol = match &self.tail {
            None => return Err(Error::Misuse("write_scan_event outside an Incident")),
            Some(Tail::V2(_)) => "ip-protocol",
            Some(Tail::V1(_)) => "ip_protocol",
        };
        let r = crate::scan::write_scan_event(&mut self.out, event, icmp, ip_protocol);
        self.io(r)?;
        self.events += 1;
        Ok(())
    }

    /// Close the open Incident.
    pub fn end_incident(&mut self) -> Result<(), Error> {
        self.guard()?;
        let r = match self.tail.take() {
            None => return Err(Error::Misuse("end_incident without begin_incident")),
            Some(Tail::V2(t)) => {
                let from = v2::Incident::EVENT_DATA_IDX + 1;
                t.write_children(&mut self.out, from, usize::MAX)
                    .and_then(|()| self.out.end("Incident"))
            }
            Some(Tail::V1(t)) => {
                let from = v1::Incident::EVENT_DATA_IDX + 1;
                t.write_children(&mut self.out, from, usize::MAX)
                    .and_then(|()| self.out.end("Incident"))
            }
        };
        self.io(r)
    }

    /// Close the document and return the output. A document needs at least one Incident.
    pub fn finish(mut self) -> Result<W, Error> {
        self.guard()?;
        if self.tail.is_some() {
            self.end_incident()?;
        }
        let unresolved = std::mem::take(&mut self.ids).unresolved();
        if !unresolved.is_empty() {
            return Err(Error::Rejected(unresolved));
        }
        if self.incidents == 0 {
            return Err(Error::Rejected(vec![Diagnostic {
                severity: Severity::Error,
                location: crate::Location {
                    path: "/IODEF-Document".into(),
                    line: 0,
                    column: 0,
                },
                message: "an IODEF document needs at least one `Incident`".into(),
            }]));
        }
        if self.version == Version::V2 {
            for a in std::mem::take(&mut self.doc_tail) {
                let r = a.write(&mut self.out, "AdditionalData");
                self.io(r)?;
            }
        }
        let r = self.out.end("IODEF-Document");
        self.io(r)?;
        Ok(self.out.into_inner()?)
    }

    /// Add a document-level `AdditionalData`, written after the last Incident by
    /// [`StreamWriter::finish`] (v2 only: v1 has no document-level AdditionalData, which is
    /// then reported in [`StreamWriter::conversion_notes`]).
    pub fn add_document_data(&mut self, data: v2::ExtensionData) -> Result<(), Error> {
        let mut c = self.checker("/IODEF-Document");
        c.enter_at("AdditionalData", self.doc_tail.len());
        data.check(&mut c);
        self.accept(c)?;
        if self.version == Version::V2 {
            self.doc_tail.push(data);
        } else {
            let mut n = Notes::new("/IODEF-Document".into(), Version::V1);
            n.lost("IODEF-Document.AdditionalData");
            self.note(n.notes);
        }
        Ok(())
    }

    /// Bytes handed to the underlying writer so far.
    pub fn bytes_written(&self) -> u64 {
        self.out.written
    }

    /// For v1 output: what could not be carried from the v2 model (warnings), each message
    /// once, at the first place it applied: a note that every EventData of a day would repeat
    /// is kept once, so memory stays flat however many are written
    /// ([`StreamWriter::repeated_conversion_notes`] counts the rest).
    pub fn conversion_notes(&self) -> &[Diagnostic] {
        &self.notes
    }

    /// How many conversion notes were left out: repeats of one in
    /// [`StreamWriter::conversion_notes`], and any
    /// past 1,000 distinct messages.
    pub fn repeated_conversion_notes(&self) -> u64 {
        self.noted.values().sum::<u64>() + self.dropped_notes
    }

    /// Keeps the notes whose message is new, at most [`MAX_NOTES`] of them (the rest are
    /// counted as repeats: a message can carry a value from the model).
    fn note(&mut self, notes: Vec<Diagnostic>) {
        for d in notes {
            match self.noted.get_mut(&d.message) {
                Some(repeats) => *repeats += 1,
                None if self.notes.len() >= MAX_NOTES => self.dropped_notes += 1,
                None => {
                    self.noted.insert(d.message.clone(), 0);
                    self.notes.push(d);
                }
            }
        }
    }

    /// Flush buffered output to the underlying writer.
    pub fn flush(&mut self) -> Result<(), Error> {
        let r = self.out.flush();
        self.io(r)
    }

    /// The underlying writer (e.g. to check how much was written to a file).
    pub fn get_mut(&mut self) -> &mut W {
        self.out.get_mut()
    }
}

fn write_incident_head_v2<W: Write>(w: &mut XmlOut<W>, i: &v2::Incident) -> std::io::Result<()> {
    w.start("Incident")?;
    i.write_attrs(w)?;
    i.write_children(w, 0, v2::Incident::EVENT_DATA_IDX + 1)
}

fn write_incident_head_v1<W: Write>(w: &mut XmlOut<W>, i: &v1::Incident) -> std::io::Result<()> {
    w.start("Incident")?;
    i.write_attrs(w)?;
    i.write_children(w, 0, v1::Incident::EVENT_DATA_IDX + 1)
}

/// One step of a streamed document.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// An Incident begins: everything that precedes its EventData (`event_data` is empty).
    Incident(Box<v2::Incident>),
    /// One top-level EventData of the current Incident (nested EventData stay inside it).
    EventData(Box<v2::EventData>),
    /// The Incident ends: all of it except `event_data` (including IndicatorData, History
    /// and AdditionalData that follow the EventData).
    IncidentEnd(Box<v2::Incident>),
}

/// A raw item of either version, before conversion.
pub(crate) enum Raw {
    V2Head(Box<v2::Incident>),
    V2Event(Box<v2::EventData>),
    V2End(Box<v2::Incident>),
    V1Head(Box<v1::Incident>),
    V1Event(Box<v1::EventData>),
    V1End(Box<v1::Incident>),
}

// One value per reader; boxing the v2 side would only add an indirection per element.
#[allow(clippy::large_enum_variant)]
enum Src {
    V2 {
        doc: v2::Document,
        inc: Option<(v2::Incident, usize, bool)>,
    },
    V1 {
        doc: v1::Document,
        inc: Option<(v1::Incident, usize, bool)>,
    },
}

/// The version-native streaming engine under [`StreamReader`] and [`crate::validate`].
pub(crate) struct RawStream<R: BufRead> {
    p: Parser<R>,
    version: Version,
    src: Src,
    pos: usize,
    queue: VecDeque<(Raw, u64, u64)>,
    head_at: (u64, u64),
    /// The document's own unit, set aside while an Incident is read (the unit caps).
    doc_unit: Option<Unit>,
    done: bool,
    pub(crate) incidents: usize,
    pub(crate) events: usize,
}

impl<R: BufRead> RawStream<R> {
    pub(crate) fn new(input: R, opts: &ReadOptions) -> Result<Self, Error> {
        let (mut p, version, attrs) = Parser::open(input, opts)?;
        let src = match version {
            Version::V2 => {
                let mut doc = v2::Document::default();
                doc.read_attrs(&mut p, attrs)?;
                Src::V2 { doc, inc: None }
            }
            Version::V1 => {
                let mut doc = v1::Document::default();
                doc.read_attrs(&mut p, attrs)?;
                Src::V1 { doc, inc: None }
            }
        };
        Ok(RawStream {
            p,
            version,
            src,
            pos: 0,
            queue: VecDeque::new(),
            head_at: (0, 0),
            doc_unit: None,
            done: false,
            incidents: 0,
            events: 0,
        })
    }

    pub(crate) fn version(&self) -> Version {
        self.version
    }

    pub(crate) fn take_diagnostics(&mut self) -> Vec<Diagnostic> {
        self.p.take_diagnostics()
    }

    pub(crate) fn dropped_diagnostics(&self) -> u64 {
        self.p.dropped_diagnostics()
    }

    /// The errors among [`Self::dropped_diagnostics`].
    pub(crate) fn dropped_errors(&self) -> u64 {
        self.p.dropped_errors()
    }

    /// The next raw item with the line and column of its start tag.
    pub(crate) fn next_raw(&mut self) -> Result<Option<(Raw, u64, u64)>, Error> {
        loop {
            if let Some(x) = self.queue.pop_front() {
                return Ok(Some(x));
            }
            if self.done {
                return Ok(None);
            }
            self.step()?;
        }
    }

    fn step(&mut self) -> Result<(), Error> {
        let p = &mut self.p;
        macro_rules! engine {
            ($m:ident, $doc:expr, $inc:expr, $head:ident, $ev:ident, $end:ident) => {{
                let doc = $doc;
                let inc = $inc;
                match inc {
                    None => {
                        if !p.next_child()? {
                            if self.incidents == 0 {
                                doc.finish(p)?;
                            }
                            p.close()?;
                            self.done = true;
                            return Ok(());
                        }
                        if p.is_child(b"Incident") {
                            if !p.order(
                                &mut self.pos,
                                $m::Document::INCIDENT_IDX,
                                "Incident",
                                $m::Document::ORDER,
                            )? {
                                return Ok(());
                            }
                            let (line, col) = p.child_start();
                            // The Incident without its EventData is a unit of its own.
                            self.doc_unit = Some(p.begin_unit());
                            let attrs = p.enter_child();
                            let mut i = $m::Incident::default();
                            i.read_attrs(p, attrs)?;
                            *inc = Some((i, 0, false));
                            self.events = 0;
                            self.head_at = (line, col);
                        } else {
                            doc.read_child(p, &mut self.pos)?;
                            // Keep the document's Incident list empty: memory stays flat.
                            doc.incident.clear();
                        }
                    }
                    Some((i, ipos, head_sent)) => {
                        let (hl, hc) = self.head_at;
                        if !p.next_child()? {
                            i.finish(p)?;
                            p.leave_child();
                            if let Some(u) = self.doc_unit.take() {
                                p.resume_unit(u);
                            }
                            let i = std::mem::take(i);
                            if !*head_sent {
                                self.queue
                                    .push_back((Raw::$head(Box::new(i.clone())), hl, hc));
                            }
                            self.queue.push_back((Raw::$end(Box::new(i)), hl, hc));
                            *inc = None;
                            self.incidents += 1;
                            return Ok(());
                        }
                        if p.is_child(b"EventData") {
                            if !p.order(
                                ipos,
                                $m::Incident::EVENT_DATA_IDX,
                                "EventData",
                                $m::Incident::ORDER,
                            )? {
                                return Ok(());
                            }
                            if !*head_sent {
                                self.queue
                                    .push_back((Raw::$head(Box::new(i.clone())), hl, hc));
                                *head_sent = true;
                            }
                            let (line, col) = p.child_start();
                            // Read in place, in its box: the EventData is not moved. It is a
                            // unit of its own (the unit caps).
                            let mut e = Box::<$m::EventData>::default();
                            let inc_unit = p.begin_unit();
                            let read = p.child(|p, a| e.read_into(p, a))?;
                            p.resume_unit(inc_unit);
                            if read.is_some() {
                                self.queue.push_back((Raw::$ev(e), line, col));
                                self.events += 1;
                            }
                        } else {
                            i.read_child(p, ipos)?;
                        }
                    }
                }
            }};
        }
        match &mut self.src {
            Src::V2 { doc, inc } => engine!(v2, doc, inc, V2Head, V2Event, V2End),
            Src::V1 { doc, inc } => engine!(v1, doc, inc, V1Head, V1Event, V1End),
        }
        Ok(())
    }

    pub(crate) fn header_v2(&self) -> v2::Document {
        match &self.src {
            Src::V2 { doc, .. } => doc.clone(),
            Src::V1 { doc, .. } => {
                let head = v1::Document {
                    lang: doc.lang.clone(),
                    formatid: doc.formatid.clone(),
                    incident: Vec::new(),
                };
                convert::to_v2(&head).value
            }
        }
    }
}

/// Reads an IODEF document incrementally: one Incident header, then its EventData one at a
/// time, then the Incident's end. v1 documents are converted to the v2 model on the fly; what
/// could not be carried is reported as warnings among the diagnostics.
///
/// ```
/// use iodef::{ReadOptions, StreamItem, StreamReader};
/// let xml = r#"<IODEF-Document version="2.00" xmlns="urn:ietf:params:xml:ns:iodef-2.0">
///   <Incident purpose="reporting"><IncidentID name="csirt.example">1</IncidentID>
///   <GenerationTime>2024-01-01T00:00:00Z</GenerationTime>
///   <Contact role="creator" type="organization"/></Incident></IODEF-Document>"#;
/// let mut r = StreamReader::new(xml.as_bytes(), &ReadOptions::strict()).unwrap();
/// let incident = r.next_incident().unwrap().unwrap();
/// assert_eq!(incident.incident_id.unwrap().value, "1");
/// assert!(r.next_incident().unwrap().is_none());
/// ```
pub struct StreamReader<R: BufRead> {
    raw: RawStream<R>,
    notes: Vec<Diagnostic>,
}

impl<R: BufRead> StreamReader<R> {
    /// Open a document: reads the prolog and the root's start tag.
    pub fn new(input: R, opts: &ReadOptions) -> Result<Self, Error> {
        Ok(StreamReader {
            raw: RawStream::new(input, opts)?,
            notes: Vec::new(),
        })
    }

    /// The version of the document being read.
    pub fn version(&self) -> Version {
        self.raw.version()
    }

    /// The root's attributes (and, once the end is reached, its AdditionalData), in the v2
    /// model.
    pub fn header(&self) -> v2::Document {
        self.raw.header_v2()
    }

    /// Diagnostics so far (warnings; in lenient mode also the errors skipped over; for v1
    /// input what the conversion could not carry). Taking them frees their memory.
    pub fn take_diagnostics(&mut self) -> Vec<Diagnostic> {
        let mut d = self.raw.take_diagnostics();
        d.append(&mut self.notes);
        d
    }

    /// Diagnostics dropped because of [`crate::Limits::max_diagnostics`].
    pub fn dropped_diagnostics(&self) -> u64 {
        self.raw.dropped_diagnostics()
    }

    /// The next step, or `None` at the end of the document.
    pub fn next_item(&mut self) -> Result<Option<StreamItem>, Error> {
        let Some((raw, _, _)) = self.raw.next_raw()? else {
            return Ok(None);
        };
        // v2 items need no conversion (and no notes: nothing to allocate per item).
        let raw = match raw {
            Raw::V2Head(i) => return Ok(Some(StreamItem::Incident(i))),
            Raw::V2Event(e) => return Ok(Some(StreamItem::EventData(e))),
            Raw::V2End(i) => return Ok(Some(StreamItem::IncidentEnd(i))),
            v1 => v1,
        };
        let inc_path = format!("/IODEF-Document/Incident[{}]", self.raw.incidents + 1);
        let mut n = Notes::new(inc_path, Version::V2);
        let item = match raw {
            Raw::V2Head(i) => StreamItem::Incident(i),
            Raw::V2Event(e) => StreamItem::EventData(e),
            Raw::V2End(i) => StreamItem::IncidentEnd(i),
            Raw::V1Head(i) => {
                // Notes for the Incident's own parts are reported once, at its end.
                let mut quiet = Notes::new(String::new(), Version::V2);
                StreamItem::Incident(Box::new(convert::incident_v1_to_v2(&i, &mut quiet)))
            }
            Raw::V1Event(e) => {
                StreamItem::EventData(Box::new(convert::event_data_v1_to_v2(&e, &mut n)))
            }
            Raw::V1End(i) => {
                let mut n2 = Notes::new(
                    format!("/IODEF-Document/Incident[{}]", self.raw.incidents),
                    Version::V2,
                );
                let v = convert::incident_v1_to_v2(&i, &mut n2);
                n.notes.append(&mut n2.notes);
                StreamItem::IncidentEnd(Box::new(v))
            }
        };
        self.notes.append(&mut n.notes);
        Ok(Some(item))
    }

    /// The next whole Incident with all its EventData (memory grows with that Incident only).
    pub fn next_incident(&mut self) -> Result<Option<v2::Incident>, Error> {
        let mut events = Vec::new();
        while let Some(item) = self.next_item()? {
            match item {
                StreamItem::Incident(_) => events.clear(),
                StreamItem::EventData(e) => events.push(*e),
                StreamItem::IncidentEnd(mut i) => {
                    i.event_data = events;
                    return Ok(Some(*i));
                }
            }
        }
        Ok(None)
    }
}
