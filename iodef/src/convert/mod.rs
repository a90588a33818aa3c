//! Conversion between IODEF v1 and v2, with a report of what could not be carried.
//!
//! Same-named classes and members are carried over structurally (generated from both
//! schemas); the differences the RFCs document are bridged by hand below:
//! `ReportTime` (required in v1) and `GenerationTime` (required in v2), `lang` and `xml:lang`,
//! `formatid` and `format-id`, v1 `Impact` and v2 `SystemImpact` (v1 `recon` has no v2 value
//! and is carried as `ext-value`; a v2 `IncidentCategory` naming scanning becomes v1
//! `Impact type="recon"`), v1 `NodeName` and v2 `DomainData/Name`, and v1's single
//! `RelatedActivity` choice. An enumeration value the other version lacks is carried as
//! `ext-value` when the attribute allows it. Everything else that has no place in the target
//! is reported, never silently dropped.

mod generated;

use crate::error::{Diagnostic, Location, Severity};
use crate::types::XmlEnum;
use crate::{v1, v2, Document, Version};

/// The result of a conversion: the converted value and what could not be carried.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion<T> {
    /// The converted value.
    pub value: T,
    /// One warning per piece of information that was dropped or changed.
    pub notes: Vec<Diagnostic>,
}

pub(crate) struct Notes {
    path: String,
    target: Version,
    pub(crate) notes: Vec<Diagnostic>,
}

impl Notes {
    pub(crate) fn new(path: String, target: Version) -> Self {
        Notes {
            path,
            target,
            notes: Vec::new(),
        }
    }

    fn push(&mut self, message: String) {
        self.notes.push(Diagnostic {
            severity: Severity::Warning,
            location: Location {
                path: self.path.clone(),
                line: 0,
                column: 0,
            },
            message,
        });
    }

    pub(crate) fn lost(&mut self, what: &str) {
        let v = match self.target {
            Version::V1 => "v1",
            Version::V2 => "v2",
        };
        self.push(format!("`{what}` has no place in IODEF {v}: not carried"));
    }

    fn changed(&mut self, message: String) {
        self.push(message);
    }

    fn unlose(&mut self, what: &str) {
        let needle = format!("`{what}` ");
        self.notes.retain(|d| !d.message.starts_with(&needle));
    }
}

/// [`conv_enum`] for an optional attribute: `None` stays `None`.
fn conv_opt<A: XmlEnum, B: XmlEnum>(a: &Option<A>, n: &mut Notes, what: &str) -> Option<B> {
    a.as_ref().and_then(|a| conv_enum(a, n, what))
}

fn conv_enum<A: XmlEnum, B: XmlEnum>(a: &A, n: &mut Notes, what: &str) -> Option<B> {
    let s = a.as_xml();
    if s == "ext-value" {
        let e = a.ext_str().unwrap_or_default().to_owned();
        let r = B::ext_value(e);
        if r.is_none() {
            n.lost(&format!("{what}=ext-value"));
        }
        return r;
    }
    if let Some(b) = B::from_xml(s) {
        return Some(b);
    }
    match B::ext_value(s.to_owned()) {
        Some(b) => {
            n.changed(format!(
                "`{what}` value `{s}` does not exist in the target version: carried as ext-value"
            ));
            Some(b)
        }
        None => {
            n.lost(&format!("{what}={s}"));
            None
        }
    }
}

/// Convert a v1 document to v2.
pub fn to_v2(doc: &v1::Document) -> Conversion<v2::Document> {
    let mut n = Notes::new("/IODEF-Document".into(), Version::V2);
    let value = generated::v1_to_v2_document(doc, &mut n);
    Conversion {
        value,
        notes: n.notes,
    }
}

/// Convert a v2 document to v1.
pub fn to_v1(doc: &v2::Document) -> Conversion<v1::Document> {
    let mut n = Notes::new("/IODEF-Document".into(), Version::V1);
    let value = generated::v2_to_v1_document(doc, &mut n);
    Conversion {
        value,
        notes: n.notes,
    }
}

impl Document {
    /// Convert to `version` (a copy when it already is that version).
    pub fn convert(&self, version: Version) -> Conversion<Document> {
        match (self, version) {
            (Document::V1(d), Version::V2) => {
                let c = to_v2(d);
                Conversion {
                    value: Document::V2(c.value),
                    notes: c.notes,
                }
            }
            (Document::V2(d), Version::V1) => {
                let c = to_v1(d);
                Conversion {
                    value: Document::V1(c.value),
                    notes: c.notes,
                }
            }
            _ => Conversion {
                value: self.clone(),
                notes: Vec::new(),
            },
        }
    }
}

pub(crate) fn incident_v1_to_v2(x: &v1::Incident, n: &mut Notes) -> v2::Incident {
    generated::v1_to_v2_incident(x, n)
}

pub(crate) fn incident_v2_to_v1(x: &v2::Incident, n: &mut Notes) -> v1::Incident {
    generated::v2_to_v1_incident(x, n)
}

pub(crate) fn event_data_v1_to_v2(x: &v1::EventData, n: &mut Notes) -> v2::EventData {
    generated::v1_to_v2_event_data(x, n)
}

pub(crate) fn event_data_v2_to_v1(x: &v2::EventData, n: &mut Notes) -> v1::EventData {
    generated::v2_to_v1_event_data(x, n)
}

/// Hand-written bridges for what the two models express differently.
mod fixup {
    use super::{conv_enum, conv_opt, Notes};
    use crate::{v1, v2};

    /// A v2 string of `text`, with no language.
    fn ml(text: &str) -> v2::MLString {
        v2::MLString {
            value: text.to_owned(),
            ..Default::default()
        }
    }

    /// The texts of several v2 strings as one v1 text, joined with `; `.
    fn joined(texts: &[v2::MLString]) -> String {
        texts
            .iter()
            .map(|t| t.value.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(super) fn v1_to_v2_document(x: &v1::Document, out: &mut v2::Document, n: &mut Notes) {
        out.format_id = x.formatid.clone();
        n.unlose("Document.formatid");
    }

    pub(super) fn v2_to_v1_document(x: &v2::Document, out: &mut v1::Document, n: &mut Notes) {
        out.formatid = x.format_id.clone();
        n.unlose("Document.format_id");
        if out.lang.is_none() {
            // `lang` is required in v1; RFC 5070 uses language tags, "en" is the usual default.
            out.lang = Some("en".into());
            n.changed("v1 requires `IODEF-Document@lang`: set to `en`".into());
        }
    }

    pub(super) fn v1_to_v2_incident(x: &v1::Incident, out: &mut v2::Incident, _n: &mut Notes) {
        if out.generation_time.is_none() {
            out.generation_time = x.report_time.clone();
        }
    }

    pub(super) fn v2_to_v1_incident(x: &v2::Incident, out: &mut v1::Incident, n: &mut Notes) {
        if out.report_time.is_none() {
            out.report_time = x.generation_time.clone();
            n.unlose("Incident.generation_time");
        }
        if out.assessment.is_empty() {
            // v1 requires an Assessment with at least one impact.
            out.assessment.push(v1::Assessment {
                choice: vec![v1::AssessmentChoice::Impact(v1::Impact {
                    kind: Some(v1::ImpactType::Unknown),
                    ..Default::default()
                })],
                ..Default::default()
            });
            n.changed("v1 requires an `Assessment`: added `Impact type=\"unknown\"`".into());
        }
    }

    pub(super) fn v1_to_v2_assessment(x: &v1::Assessment, out: &mut v2::Assessment, n: &mut Notes) {
        n.unlose("Impact");
        let mut impacts = Vec::new();
        for c in &x.choice {
            if let v1::AssessmentChoice::Impact(i) = c {
                let mut s = v2::SystemImpact {
                    severity: conv_opt(&i.severity, n, "Impact.severity"),
                    completion: conv_opt(&i.completion, n, "Impact.completion"),
                    kind: conv_opt(&i.kind, n, "Impact.type"),
                    ..Default::default()
                };
                if !i.value.trim().is_empty() {
                    s.description.push(ml(&i.value));
                }
                if matches!(i.kind, Some(v1::ImpactType::Recon)) {
                    out.incident_category.push(ml("recon"));
                }
                impacts.push(v2::AssessmentChoice::SystemImpact(s));
            }
        }
        // Keep the v1 order of impacts: Impact entries first, then the others.
        impacts.append(&mut out.choice);
        out.choice = impacts;
    }

    pub(super) fn v2_to_v1_assessment(x: &v2::Assessment, out: &mut v1::Assessment, n: &mut Notes) {
        n.unlose("SystemImpact");
        let mut impacts = Vec::new();
        let scanning = x.incident_category.iter().any(|c| {
            let t = c.value.to_ascii_lowercase();
            t.contains("scan") || t.contains("recon")
        });
        if scanning {
            n.unlose("Assessment.incident_category");
            impacts.push(v1::AssessmentChoice::Impact(v1::Impact {
                kind: Some(v1::ImpactType::Recon),
                value: joined(&x.incident_category),
                ..Default::default()
            }));
        }
        for c in &x.choice {
            if let v2::AssessmentChoice::SystemImpact(s) = c {
                if scanning && matches!(s.kind, Some(v2::SystemimpactType::Unknown) | None) {
                    continue;
                }
                impacts.push(v1::AssessmentChoice::Impact(v1::Impact {
                    severity: conv_opt(&s.severity, n, "SystemImpact.severity"),
                    completion: conv_opt(&s.completion, n, "SystemImpact.completion"),
                    kind: conv_opt(&s.kind, n, "SystemImpact.type"),
                    value: joined(&s.description),
                }));
            }
        }
        impacts.append(&mut out.choice);
        if impacts.is_empty() {
            impacts.push(v1::AssessmentChoice::Impact(v1::Impact {
                kind: Some(v1::ImpactType::Unknown),
                ..Default::default()
            }));
            n.changed(
                "v1 requires an impact in `Assessment`: added `Impact type=\"unknown\"`".into(),
            );
        }
        out.choice = impacts;
    }

    pub(super) fn v1_to_v2_node(x: &v1::Node, out: &mut v2::Node, n: &mut Notes) {
        n.unlose("NodeName");
        let mut choice = Vec::new();
        for c in &x.choice {
            match c {
                v1::NodeChoice::NodeName(name) => {
                    choice.push(v2::NodeChoice::DomainData(v2::DomainData {
                        system_status: Some(v2::DomaindataSystemStatus::Unknown),
                        domain_status: Some(v2::DomaindataDomainStatus::Unknown),
                        name: Some(name.value.clone()),
                        ..Default::default()
                    }));
                }
                v1::NodeChoice::Address(_) => {}
            }
        }
        // Addresses converted by the generated code keep their relative order.
        choice.append(&mut out.choice);
        out.choice = choice;
    }

    pub(super) fn v2_to_v1_node(x: &v2::Node, out: &mut v1::Node, n: &mut Notes) {
        n.unlose("DomainData");
        let mut choice = Vec::new();
        for c in &x.choice {
            if let v2::NodeChoice::DomainData(d) = c {
                if let Some(name) = &d.name {
                    choice.push(v1::NodeChoice::NodeName(v1::MLString {
                        value: name.clone(),
                        ..Default::default()
                    }));
                } else {
                    n.lost("DomainData without Name");
                }
            }
        }
        choice.append(&mut out.choice);
        out.choice = choice;
    }

    pub(super) fn v1_to_v2_related_activity(
        x: &v1::RelatedActivity,
        out: &mut v2::RelatedActivity,
        n: &mut Notes,
    ) {
        n.unlose("RelatedActivity.choice");
        match &x.choice {
            Some(v1::RelatedActivityChoice::IncidentID(ids)) => {
                let mut sub = Notes::new(String::new(), crate::Version::V2);
                out.incident_id = ids
                    .iter()
                    .map(|i| super::generated::v1_to_v2_incident_id(i, &mut sub))
                    .collect();
                n.notes.append(&mut sub.notes);
            }
            Some(v1::RelatedActivityChoice::URL(urls)) => out.url = urls.clone(),
            None => {}
        }
    }

    pub(super) fn v2_to_v1_related_activity(
        x: &v2::RelatedActivity,
        out: &mut v1::RelatedActivity,
        n: &mut Notes,
    ) {
        n.unlose("RelatedActivity.incident_id");
        n.unlose("RelatedActivity.url");
        if !x.incident_id.is_empty() {
            let ids = x
                .incident_id
                .iter()
                .map(|i| super::generated::v2_to_v1_incident_id(i, n))
                .collect();
            out.choice = Some(v1::RelatedActivityChoice::IncidentID(ids));
            if !x.url.is_empty() {
                n.lost("RelatedActivity.URL next to IncidentID");
            }
        } else if !x.url.is_empty() {
            out.choice = Some(v1::RelatedActivityChoice::URL(x.url.clone()));
        }
    }

    pub(super) fn v1_to_v2_contact(x: &v1::Contact, out: &mut v2::Contact, n: &mut Notes) {
        n.unlose("Contact.email");
        n.unlose("Contact.telephone");
        n.unlose("Contact.fax");
        out.email = x
            .email
            .iter()
            .map(|e| v2::Email {
                email_to: Some(e.value.clone()),
                description: e.meaning.iter().map(|m| ml(m)).collect(),
                ..Default::default()
            })
            .collect();
        let phone = |t: &v1::ContactMeans, kind| v2::Telephone {
            kind,
            telephone_number: Some(t.value.clone()),
            description: t.meaning.iter().map(|m| ml(m)).collect(),
        };
        out.telephone = x.telephone.iter().map(|t| phone(t, None)).collect();
        if let Some(f) = &x.fax {
            out.telephone.push(phone(f, Some(v2::TelephoneType::Fax)));
        }
    }

    pub(super) fn v2_to_v1_contact(x: &v2::Contact, out: &mut v1::Contact, n: &mut Notes) {
        n.unlose("Contact.email");
        n.unlose("Contact.telephone");
        let means = |value: &Option<String>, d: &[v2::MLString]| v1::ContactMeans {
            meaning: d.first().map(|m| m.value.clone()),
            value: value.clone().unwrap_or_default(),
        };
        out.email = x
            .email
            .iter()
            .map(|e| means(&e.email_to, &e.description))
            .collect();
        for t in &x.telephone {
            let m = means(&t.telephone_number, &t.description);
            if matches!(t.kind, Some(v2::TelephoneType::Fax)) && out.fax.is_none() {
                out.fax = Some(m);
            } else {
                out.telephone.push(m);
            }
        }
    }

    pub(super) fn v1_to_v2_service(x: &v1::Service, out: &mut v2::Service, n: &mut Notes) {
        n.unlose("Service.choice");
        match &x.choice {
            Some(v1::ServiceChoice::Port(p)) => out.port = Some(*p),
            Some(v1::ServiceChoice::Portlist(p)) => out.portlist = Some(p.clone()),
            None => {}
        }
    }

    pub(super) fn v2_to_v1_service(x: &v2::Service, out: &mut v1::Service, n: &mut Notes) {
        n.unlose("Service.port");
        n.unlose("Service.portlist");
        if let Some(p) = x.port {
            out.choice = Some(v1::ServiceChoice::Port(p));
            if x.portlist.is_some() {
                n.lost("Service.Portlist next to Port");
            }
        } else if let Some(p) = &x.portlist {
            out.choice = Some(v1::ServiceChoice::Portlist(p.clone()));
        }
    }

    pub(super) fn v1_to_v2_method(x: &v1::Method, out: &mut v2::Method, n: &mut Notes) {
        n.unlose("Method.choice");
        for c in &x.choice {
            match c {
                v1::MethodChoice::Reference(r) => {
                    out.reference
                        .push(super::generated::v1_to_v2_reference(r, n));
                }
                v1::MethodChoice::Description(d) => {
                    out.description
                        .push(super::generated::v1_to_v2_ml_string(d, n));
                }
            }
        }
    }

    pub(super) fn v2_to_v1_method(x: &v2::Method, out: &mut v1::Method, n: &mut Notes) {
        n.unlose("Method.reference");
        n.unlose("Method.description");
        for r in &x.reference {
            let r = super::generated::v2_to_v1_reference(r, n);
            out.choice.push(v1::MethodChoice::Reference(r));
        }
        for d in &x.description {
            let d = super::generated::v2_to_v1_ml_string(d, n);
            out.choice.push(v1::MethodChoice::Description(d));
        }
        if out.choice.is_empty() {
            out.choice.push(v1::MethodChoice::Description(v1::MLString {
                value: "unspecified".into(),
                ..Default::default()
            }));
            n.changed("v1 requires a `Reference` or `Description` in `Method`: added a placeholder Description".into());
        }
    }

    pub(super) fn v1_to_v2_counter(x: &v1::Counter, out: &mut v2::Counter, n: &mut Notes) {
        // v1 `type` names what is counted, which is v2's `unit`; v2 `type` is the kind of figure.
        n.unlose("Counter.kind");
        out.unit = x
            .kind
            .as_ref()
            .and_then(|k| conv_enum::<v1::CounterType, v2::CounterUnit>(k, n, "Counter.type"));
        out.kind = Some(v2::CounterType::Counter);
    }

    pub(super) fn v2_to_v1_counter(x: &v2::Counter, out: &mut v1::Counter, n: &mut Notes) {
        // v2's unit becomes v1's type (below); v2's kind has no v1 field beside `counter`,
        // which is what a v1 Counter is (any other kind is reported just after).
        n.unlose("Counter.unit");
        n.unlose("Counter.kind");
        out.kind = x
            .unit
            .as_ref()
            .and_then(|k| conv_enum::<v2::CounterUnit, v1::CounterType>(k, n, "Counter.unit"));
        if let Some(k) = &x.kind {
            if !matches!(k, v2::CounterType::Counter) {
                n.lost(&format!("Counter.type={}", k.as_str()));
            }
        }
    }

    pub(super) fn v1_to_v2_reference(x: &v1::Reference, out: &mut v2::Reference, n: &mut Notes) {
        // v2's ReferenceName is an RFC 7495 enumeration reference (specIndex + ID); a v1 free-text
        // name is kept as the first Description.
        n.unlose("Reference.reference_name");
        if let Some(name) = &x.reference_name {
            out.description.insert(
                0,
                v2::MLString {
                    value: name.value.clone(),
                    lang: name.lang.clone(),
                    ..Default::default()
                },
            );
            n.changed(
                "v1 `ReferenceName` carried as the first `Description` of the v2 `Reference`"
                    .into(),
            );
        }
    }

    pub(super) fn v2_to_v1_reference(x: &v2::Reference, out: &mut v1::Reference, n: &mut Notes) {
        n.unlose("Reference.reference_name");
        let from_enum = x.reference_name.as_ref().and_then(|e| {
            e.content.iter().find_map(|c| match c {
                crate::ExtensionContent::Element(id) if id.name == "ID" => Some(
                    id.content
                        .iter()
                        .filter_map(|t| match t {
                            crate::ExtensionContent::Text(t) => Some(t.trim()),
                            crate::ExtensionContent::Element(_) => None,
                        })
                        .collect::<String>(),
                ),
                _ => None,
            })
        });
        let name = from_enum
            .or_else(|| x.url.first().cloned())
            .or_else(|| x.description.first().map(|d| d.value.clone()))
            .unwrap_or_else(|| "unnamed".into());
        out.reference_name = Some(v1::MLString {
            value: name,
            ..Default::default()
        });
    }

    pub(super) fn v2_to_v1_system(_x: &v2::System, out: &mut v1::System, n: &mut Notes) {
        let before = out.service.len();
        out.service.retain(|s| s.ip_protocol.is_some());
        if out.service.len() < before {
            n.lost("Service without ip-protocol (required in v1)");
        }
    }

    pub(super) fn v2_to_v1_event_data(_x: &v2::EventData, out: &mut v1::EventData, n: &mut Notes) {
        if let Some(r) = &mut out.record {
            let before = r.record_data.len();
            r.record_data.retain(|d| !d.record_item.is_empty());
            if r.record_data.len() < before {
                n.lost("RecordData without RecordItem (required in v1)");
            }
            if r.record_data.is_empty() {
                out.record = None;
            }
        }
    }
}
