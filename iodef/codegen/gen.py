#!/usr/bin/env python3
"""Generate the typed IODEF model (structs, enums, reader, writer, checks) from the XSD.

Usage: python3 iodef/codegen/gen.py [--schemas DIR] [--out DIR]

Reads iodef-2.0.xsd and iodef-1.0.xsd (from ../shared/conformance/iodef/schemas beside the
workspace unless --schemas says otherwise) and writes v2/model.rs, v1/model.rs and
convert/generated.rs under iodef/src (or under --out), formatted with rustfmt. The generated
files are committed; re-run this script only when the generator changes.
`scripts/check-generated` (run by `scripts/test`) regenerates them into a temporary directory
and fails if they differ from the committed ones. Standard library only.
"""
import argparse
import os
import re
import sys
import xml.etree.ElementTree as ET

XS = "{http://www.w3.org/2001/XMLSchema}"
HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = os.path.join(HERE, "..", "..", "..", "shared", "conformance", "iodef", "schemas")

FOREIGN = {
    "sci": ("Sci", "urn:ietf:params:xml:ns:iodef-sci-1.0"),
    "enum": ("Enum", "urn:ietf:params:xml:ns:iodef-enum-1.0"),
    "ds": ("Ds", "http://www.w3.org/2000/09/xmldsig#"),
}

RUST_KEYWORDS = {"virtual", "abstract", "override", "priv", "typeof", "unsized", "yield", "async", "await", "dyn", "try", "macro", "crate", "super", "const", "extern", "false", "true", "for", "if", "else", "while", "return", "break", "continue", "mut", "pub", "unsafe", "type", "ref", "use", "match", "impl", "fn", "mod", "self", "where", "in", "as",
                 "loop", "move", "static", "struct", "trait", "enum", "let", "box", "final"}

# Text-only element types whose lexical space needs trimming before checking (xs whitespace
# "collapse"); strings are kept verbatim.
SIMPLE = {
    "xs:string": ("String", "string"),
    "xs:normalizedString": ("String", "string"),
    "xs:token": ("String", "string"),
    "xs:anyURI": ("String", "string"),
    "xs:ID": ("String", "id"),
    "xs:IDREF": ("String", "idref"),
    "xs:NMTOKEN": ("String", "string"),
    "xs:language": ("String", "string"),
    "xs:hexBinary": ("String", "string"),
    "xs:base64Binary": ("String", "string"),
    "xs:dateTime": ("DateTime", "datetime"),
    "xs:integer": ("i64", "integer"),
    "xs:float": ("Float", "float"),
    "xs:double": ("Float", "float"),
    "iodef:PositiveFloatType": ("Float", "positive_float"),
    "iodef:PortlistType": ("Portlist", "portlist"),
    "iodef:TimezoneType": ("String", "timezone"),
}


def snake(name):
    name = name.replace("IODEF-", "Iodef").replace(":", "_")
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    s = s.replace("-", "_").lower()
    if s in RUST_KEYWORDS:
        s = "kind" if s == "type" else s + "_"
    return s


def pascal(name):
    parts = re.split(r"[^A-Za-z0-9]+", name)
    out = "".join(p[:1].upper() + p[1:] for p in parts if p)
    if out[:1].isdigit():
        out = "V" + out
    return out


def local(q):
    return q.split(":", 1)[1] if ":" in q else q


def prefix(q):
    return q.split(":", 1)[0] if ":" in q else ""


def occurs(el):
    mn = int(el.get("minOccurs", "1"))
    mx = el.get("maxOccurs", "1")
    mx = -1 if mx == "unbounded" else int(mx)
    return mn, mx


class Enum:
    def __init__(self, name, values):
        self.name = name
        self.values = [v for v in values if v != "ext-value"]
        self.has_ext = "ext-value" in values
        self.default = None


class Attr:
    pass


class Field:
    """One child particle: an element (kind 'elem') or a choice (kind 'choice')."""
    pass


class Class:
    def __init__(self, name, xml_name):
        self.name = name
        self.xml_name = xml_name
        self.attrs = []
        self.fields = []
        self.text = None  # (rust type, parse kind) for simple content
        self.mixed_any = False
        self.any_children = False
        self.repeat_seq = None  # name of the item struct when the sequence itself repeats
        self.fixed = []


class Gen:
    def __init__(self, path, version):
        self.version = version
        self.tree = ET.parse(path).getroot()
        self.gelems = {e.get("name"): e for e in self.tree.findall(XS + "element")}
        self.ctypes = {e.get("name"): e for e in self.tree.findall(XS + "complexType")}
        self.stypes = {e.get("name"): e for e in self.tree.findall(XS + "simpleType")}
        self.enums = {}
        self.classes = {}
        self.class_of_ctype = {}
        self.choice_enums = []  # (enum name, [(variant, xml name, rust type, is_vec, ns)])
        self.items = []

    # ---- simple types ----
    def enum_for(self, sname, el, owner, attr):
        if el is None:
            return None
        r = el.find(XS + "restriction")
        if r is None:
            return None
        vals = [e.get("value") for e in r.findall(XS + "enumeration")]
        if not vals:
            return None
        if sname:
            name = pascal(re.sub(r"-type$", "", sname))
        else:
            name = owner + pascal(attr)
        if name in self.enums:
            if self.enums[name].values + (["ext-value"] if self.enums[name].has_ext else []) != \
                    [v for v in vals if v != "ext-value"] + (["ext-value"] if "ext-value" in vals else []):
                name = owner + pascal(attr)
        if name not in self.enums:
            self.enums[name] = Enum(name, vals)
        return name

    def simple_of(self, t):
        """Rust type and parse kind for a simple type reference, or None if complex."""
        if t in SIMPLE:
            return SIMPLE[t]
        if t.startswith("iodef:"):
            n = local(t)
            if n in self.stypes:
                st = self.stypes[n]
                r = st.find(XS + "restriction")
                if r is not None and r.findall(XS + "enumeration"):
                    return (self.enum_for(n, st, "", ""), "enum")
                if r is not None and r.get("base") in SIMPLE:
                    return SIMPLE[r.get("base")]
        if t in self.stypes:
            return self.simple_of("iodef:" + t)
        return None

    # ---- attributes ----
    def attrs_of(self, node, owner):
        self._fixed = []
        out = []
        for a in node.findall(XS + "attribute"):
            at = Attr()
            if a.get("ref") == "xml:lang":
                at.xml = "xml:lang"
                at.field = "lang"
                at.rtype, at.kind = "String", "string"
                at.required = False
            else:
                at.xml = a.get("name")
                at.field = snake(at.xml)
                t = a.get("type")
                if t is None:
                    st = a.find(XS + "simpleType")
                    en = self.enum_for(None, st, owner, at.xml)
                    at.rtype, at.kind = (en, "enum") if en else ("String", "string")
                else:
                    tt = t if ":" in t else "iodef:" + t
                    s = self.simple_of(tt)
                    if s is None:
                        raise SystemExit("unknown attribute type %s" % t)
                    at.rtype, at.kind = s
                at.required = a.get("use") == "required"
            at.default = a.get("default")
            at.fixed = a.get("fixed")
            at.ext = None
            out.append(at)
        names = {a.xml: a for a in out}
        keep = []
        for a in out:
            if a.kind == "enum" and self.enums[a.rtype].has_ext:
                comp = names.get("ext-" + a.xml)
                if comp is None:
                    print("warning: %s@%s has ext-value but no ext- companion" % (owner, a.xml),
                          file=sys.stderr)
                a.ext = "ext-" + a.xml
            if a.xml.startswith("ext-") and a.xml[4:] in names and names[a.xml[4:]].kind == "enum" \
                    and self.enums[names[a.xml[4:]].rtype].has_ext:
                continue
            if a.fixed is not None:
                self._fixed.append((a.xml, a.fixed))
                continue
            if a.xml == "category" and owner == "Address" and a.default:
                self.enums[a.rtype].default = a.default
            keep.append(a)
        return keep

    # ---- classes ----
    def class_for_ctype(self, tname):
        if tname in self.class_of_ctype:
            return self.class_of_ctype[tname]
        cname = pascal(re.sub(r"Type$", "", tname))
        if tname == "ExtensionType":
            cname = "ExtensionData"
        self.class_of_ctype[tname] = cname
        self.build_class(cname, self.ctypes[tname], tname)
        return cname

    def elem_target(self, el, owner):
        """For an element declaration or ref: (xml name, ns key, rust type, parse kind)."""
        ref = el.get("ref")
        if ref is not None:
            p = prefix(ref)
            n = local(ref)
            if p in FOREIGN:
                return n, FOREIGN[p][0], "AnyElement", "any"
            decl = self.gelems[n]
        else:
            n = el.get("name")
            decl = el
        t = decl.get("type")
        if t is not None:
            if n == "Port" and t == "xs:integer":
                return n, "Iodef", "u16", "port"
            s = self.simple_of(t)
            if s is not None:
                return n, "Iodef", s[0], s[1]
            return n, "Iodef", self.class_for_ctype(local(t)), "class"
        ct = decl.find(XS + "complexType")
        if ct is None:
            return n, "Iodef", "String", "string"
        cname = "Document" if n == "IODEF-Document" else pascal(n)
        key = ("elem", n, id(decl))
        if key not in self.classes_by_decl:
            if cname in self.classes:
                cname = owner + cname
            self.classes_by_decl[key] = cname
            self.build_class(cname, ct, n)
        return n, "Iodef", self.classes_by_decl[key], "class"

    def build_class(self, cname, ct, xml_name):
        c = Class(cname, xml_name)
        self.classes[cname] = c
        sc = ct.find(XS + "simpleContent")
        if sc is not None:
            ext = sc.find(XS + "extension")
            base = ext.get("base")
            c.text = self.simple_of(base) or ("String", "string")
            c.attrs = self.attrs_of(ext, cname)
            c.fixed = self._fixed
            return
        c.attrs = self.attrs_of(ct, cname)
        c.fixed = self._fixed
        if ct.get("mixed") == "true":
            if ct.find(".//" + XS + "any") is not None:
                c.mixed_any = True
            else:
                c.text = ("String", "string")
            return
        seq = ct.find(XS + "sequence")
        ch = ct.find(XS + "choice")
        if seq is None and ch is None:
            return
        if seq is None:
            self.add_choice(c, ch, 0)
            return
        if seq.find(XS + "any") is not None:
            c.any_children = True
            return
        mn, mx = occurs(seq)
        if mx != 1:
            # A repeating sequence: an item struct holding one round of the sequence.
            item = Class(cname + "Item", None)
            self.classes[item.name] = item
            self.fill_seq(item, seq)
            c.repeat_seq = item.name
            return
        self.fill_seq(c, seq)

    def fill_seq(self, c, seq):
        idx = 0
        for part in seq:
            if part.tag == XS + "element":
                f = Field()
                f.kind = "elem"
                f.xml, f.ns, f.rtype, f.pkind = self.elem_target(part, c.name)
                f.min, f.max = occurs(part)
                f.idx = idx
                f.field = snake(f.xml)
                c.fields.append(f)
            elif part.tag == XS + "choice":
                self.add_choice(c, part, idx)
            elif part.tag == XS + "sequence":
                raise SystemExit("nested sequence in %s" % c.name)
            idx += 1

    def add_choice(self, c, ch, idx):
        f = Field()
        f.kind = "choice"
        f.min, f.max = occurs(ch)
        f.idx = idx
        variants = []
        for alt in ch:
            if alt.tag != XS + "element":
                raise SystemExit("complex choice in %s" % c.name)
            xml, ns, rtype, pkind = self.elem_target(alt, c.name)
            amn, amx = occurs(alt)
            if amn == 0:
                f.min = 0
            is_vec = amx != 1 and f.max == 1
            variants.append((pascal(xml), xml, rtype, pkind, is_vec, ns))
        names = [v[1] for v in variants]
        f.rtype = c.name + "Choice"
        if len(c.fields) and any(x.kind == "choice" for x in c.fields):
            f.rtype = c.name + "Choice" + str(idx)
        f.field = "choice" if f.rtype.endswith("Choice") else "choice" + str(idx)
        f.variants = variants
        f.xml = "|".join(names)
        self.choice_enums.append((f.rtype, variants))
        c.fields.append(f)

    def run(self):
        self.classes_by_decl = {}
        self.elem_target(self.gelems["IODEF-Document"], "")


# ---------------------------------------------------------------- emit


def field_type(f):
    if f.max != 1:
        return "Vec<%s>" % f.rtype
    return "Option<%s>" % f.rtype


def is_address_category(a, cname):
    return a.xml == "category" and cname == "Address" and a.default is not None


def attr_type(a, cname):
    if is_address_category(a, cname):
        return a.rtype
    return "Option<%s>" % a.rtype


def rust_str(v):
    return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')


def parse_simple(kind, rtype, src, what):
    """Rust expression of type Option<rtype> (errors propagate with `?`)."""
    if kind == "string":
        return "Some(%s.to_owned())" % src
    if kind == "enum":
        return "p.enum_value::<%s>(%s, %s)?" % (rtype, src, what)
    return "p.value_%s(%s, %s)?" % (kind, src, what)


def leaf_write(kind, expr, name):
    if kind in ("string", "timezone", "id", "idref"):
        return "w.leaf(%s, %s)?" % (name, expr)
    if kind == "enum":
        return "w.leaf(%s, %s.as_str())?" % (name, expr)
    if kind == "any":
        return "w.any(%s)?" % expr
    if kind == "class":
        return "%s.write(w, %s)?" % (expr, name)
    return "w.leaf_display(%s, %s)?" % (name, expr)


# The check of a value of these kinds: `c.METHOD(value, name)`.
CHECK_METHOD = {
    "string": "text",
    "timezone": "text",
    "id": "id",
    "idref": "idref",
    "positive_float": "positive",
    "float": "float",
    "any": "any",
}


def check_value(kind, expr, name):
    if kind in CHECK_METHOD:
        return "{ c.%s(%s, %s); }" % (CHECK_METHOD[kind], expr, name)
    if kind == "enum":
        return "{ c.ext(%s.ext(), %s); }" % (expr, name)
    if kind == "class":
        return "{ c.enter(%s); %s.check(c); c.leave(); }" % (name, expr)
    return ""


def emit(gen, out_path, ns_uri, version_label, hooks):
    L = []
    w = L.append
    w("// @generated by iodef/codegen/gen.py from %s. Do not edit by hand." % version_label)
    w("")
    w("// Generated readers, writers and checks share one signature per kind of class, so some")
    w("// parameters go unused in classes without attributes or children.")
    w("#![allow(unused_variables)]")
    w("// Schema `choice`s hold classes of very different sizes; boxing them would make the model")
    w("// awkward to build and match on.")
    w("#![allow(clippy::large_enum_variant, clippy::match_single_binding)]")
    w("")
    w("use std::io::{self, BufRead, Write};")
    w("")
    w("use crate::check::Checker;")
    w("use crate::error::Error;")
    w("use crate::read::{Attrs, Ns, Parser};")
    w("#[allow(unused_imports)]")
    w("use crate::types::{AnyElement, DateTime, ExtensionContent, Float, Portlist, XmlEnum};")
    w("use crate::write::XmlOut;")
    w("")
    w("/// XML namespace of this version.")
    w("pub const NAMESPACE: &str = %s;" % rust_str(ns_uri))
    w("")
    for en in sorted(gen.enums.values(), key=lambda e: e.name):
        emit_enum(w, gen, en)
    for name, variants in gen.choice_enums:
        w("/// One alternative of a schema `choice`.")
        w("#[derive(Debug, Clone, PartialEq)]")
        w("pub enum %s {" % name)
        for vn, xml, rtype, pkind, is_vec, ns in variants:
            w("    /// `%s`" % xml)
            w("    %s(%s)," % (vn, "Vec<%s>" % rtype if is_vec else rtype))
        w("}")
        w("")
        w("impl %s {" % name)
        w("    fn write<W: Write>(&self, w: &mut XmlOut<W>) -> io::Result<()> {")
        w("        match self {")
        for vn, xml, rtype, pkind, is_vec, ns in variants:
            if is_vec:
                w("            Self::%s(list) => { for x in list { %s; } }" % (vn, leaf_write(pkind, "x", rust_str(xml))))
            else:
                w("            Self::%s(x) => %s," % (vn, leaf_write(pkind, "x", rust_str(xml))))
        w("        }")
        w("        Ok(())")
        w("    }")
        w("    fn check(&self, c: &mut Checker) {")
        w("        match self {")
        for vn, xml, rtype, pkind, is_vec, ns in variants:
            cv = check_value(pkind, "x", rust_str(xml)) or "{ let _ = x; }"
            if is_vec:
                w("            Self::%s(list) => { for x in list { %s } }" % (vn, cv))
            else:
                w("            Self::%s(x) => %s" % (vn, cv))
        w("        }")
        w("    }")
        w("}")
        w("")
    for c in sorted(gen.classes.values(), key=lambda c: c.name):
        emit_struct(w, gen, c, hooks)
    with open(out_path, "w") as f:
        f.write("\n".join(L) + "\n")


def emit_enum(w, gen, en):
    w("/// Enumeration `%s`%s." % (en.name, " with its `ext-value` companion" if en.has_ext else ""))
    w("#[derive(Debug, Clone, PartialEq, Eq, Hash%s)]" % (", Default" if en.default else ""))
    w("#[non_exhaustive]")
    w("pub enum %s {" % en.name)
    seen = set()
    variants = []
    for v in en.values:
        vn = pascal(v)
        while vn in seen:
            vn += "X"
        seen.add(vn)
        variants.append((vn, v))
        w("    /// `%s`" % v)
        if en.default == v:
            w("    #[default]")
        w("    %s," % vn)
    if en.has_ext:
        w("    /// `ext-value`: the value is carried in the companion `ext-` attribute.")
        w("    Ext(String),")
    w("}")
    w("")
    w("impl %s {" % en.name)
    w("    /// Every value defined by the schema (without `ext-value`).")
    w("    pub const ALL: &'static [%s] = &[%s];" % (en.name, ", ".join("Self::" + vn for vn, _ in variants)))
    w("    /// The attribute value as written in XML (`ext-value` for an extension).")
    w("    pub fn as_str(&self) -> &str {")
    w("        match self {")
    for vn, v in variants:
        w("            Self::%s => %s," % (vn, rust_str(v)))
    if en.has_ext:
        w("            Self::Ext(_) => \"ext-value\",")
    w("        }")
    w("    }")
    w("    /// The extension value (the `ext-` attribute), for an extension.")
    w("    pub fn ext(&self) -> Option<&str> {")
    if en.has_ext:
        w("        match self {")
        w("            Self::Ext(s) => Some(s),")
        w("            _ => None,")
        w("        }")
    else:
        w("        None")
    w("    }")
    w("}")
    w("")
    w("impl XmlEnum for %s {" % en.name)
    w("    fn from_xml(s: &str) -> Option<Self> {")
    w("        Some(match s {")
    for vn, v in variants:
        w("            %s => Self::%s," % (rust_str(v), vn))
    if en.has_ext:
        w("            \"ext-value\" => Self::Ext(String::new()),")
    w("            _ => return None,")
    w("        })")
    w("    }")
    w("    fn set_ext(&mut self, s: String) -> bool {")
    if en.has_ext:
        w("        if let Self::Ext(v) = self {")
        w("            *v = s;")
        w("            true")
        w("        } else {")
        w("            false")
        w("        }")
    else:
        w("        let _ = s;")
        w("        false")
    w("    }")
    w("    fn ext_value(s: String) -> Option<Self> {")
    w("        %s" % ("Some(Self::Ext(s))" if en.has_ext else "let _ = s;\n        None"))
    w("    }")
    w("    fn as_xml(&self) -> &str {")
    w("        self.as_str()")
    w("    }")
    w("    fn ext_str(&self) -> Option<&str> {")
    w("        self.ext()")
    w("    }")
    w("    fn allowed() -> &'static str {")
    w("        %s" % rust_str(", ".join(en.values + (["ext-value"] if en.has_ext else []))))
    w("    }")
    w("}")
    w("")


def order_string(c):
    parts = []
    for f in c.fields:
        suffix = {(1, 1): "", (0, 1): "?", (0, -1): "*", (1, -1): "+"}.get((f.min, f.max), "*")
        if f.kind == "choice":
            parts.append("(%s)%s" % (" | ".join(v[1] for v in f.variants), suffix))
        else:
            parts.append(f.xml + suffix)
    return ", ".join(parts)


def lines(w, text):
    """Each line of `text` (Rust source as it is written, indented for its place)."""
    for line in text.split("\n"):
        w(line)


def if_missing(w, f, call):
    """For a required field, `if <the field is empty> { call }` in a method body."""
    if f.min < 1:
        return
    cond = "self.%s.is_empty()" % f.field if f.max != 1 else "self.%s.is_none()" % f.field
    w("        if %s {" % cond)
    w("            %s" % call)
    w("        }")


def emit_struct(w, gen, c, hooks):
    if c.xml_name:
        w("/// The `%s` class." % c.xml_name)
    else:
        w("/// One round of a repeating sequence.")
    w("#[derive(Debug, Clone, PartialEq, Default)]")
    w("pub struct %s {" % c.name)
    for a in c.attrs:
        w("    /// Attribute `%s`%s." % (a.xml, " (required)" if a.required else (" (schema default `%s`)" % a.default if a.default else "")))
        w("    pub %s: %s," % (a.field, attr_type(a, c.name)))
    if c.text:
        w("    /// Element content.")
        w("    pub value: %s," % ("String" if c.text[0] == "String" else "Option<%s>" % c.text[0]))
    if c.mixed_any:
        w("    /// Mixed content: text and elements of any namespace.")
        w("    pub content: Vec<ExtensionContent>,")
    if c.any_children:
        w("    /// Child elements of any namespace.")
        w("    pub content: Vec<AnyElement>,")
    if c.repeat_seq:
        w("    /// The rounds of the repeating sequence.")
        w("    pub items: Vec<%s>," % c.repeat_seq)
    for f in c.fields:
        req = " (required)" if f.min >= 1 else ""
        w("    /// Child `%s`%s." % (f.xml, req))
        w("    pub %s: %s," % (f.field, field_type(f)))
    w("}")
    w("")
    w("impl %s {" % c.name)
    for f in c.fields:
        if f.kind == "elem" and f.field in ("event_data", "incident"):
            w("    #[allow(dead_code)]")
            w("    pub(crate) const %s_IDX: usize = %d;" % (f.field.upper(), f.idx))
    if c.fields:
        w("    /// Schema order of the children.")
        w("    pub(crate) const ORDER: &'static str = %s;" % rust_str(order_string(c)))
    # ---- read_attrs
    if c.xml_name is not None:
        w("    pub(crate) fn read_attrs<R: BufRead>(&mut self, p: &mut Parser<R>, attrs: Attrs) -> Result<(), Error> {")
        for a in c.attrs:
            if a.ext:
                w("        let mut ext_%s: Option<String> = None;" % a.field)
            if a.required:
                w("        let mut seen_%s = false;" % a.field)
        w("        for (k, v) in attrs.iter() {")
        w("            match k {")
        for a in c.attrs:
            if is_address_category(a, c.name):
                w("                %s => {" % rust_str(a.xml))
                w("                    if let Some(x) = %s {" % parse_simple(a.kind, a.rtype, "v", rust_str(a.xml)))
                w("                        self.%s = x;" % a.field)
                w("                    }")
                w("                }")
            elif a.required:
                w("                %s => {" % rust_str(a.xml))
                w("                    seen_%s = true;" % a.field)
                w("                    self.%s = %s;" % (a.field, parse_simple(a.kind, a.rtype, "v", rust_str(a.xml))))
                w("                }")
            else:
                w("                %s => self.%s = %s," % (rust_str(a.xml), a.field, parse_simple(a.kind, a.rtype, "v", rust_str(a.xml))))
            if a.ext:
                w("                %s => ext_%s = Some(v.to_owned())," % (rust_str(a.ext), a.field))
        for name, val in c.fixed:
            w("                %s => p.fixed_attr(v, %s, %s)?," % (rust_str(name), rust_str(val), rust_str(name)))
        w("                _ => p.attr_unexpected(k)?,")
        w("            }")
        w("        }")
        w("        p.recycle(attrs);")
        for a in c.attrs:
            if a.ext:
                if is_address_category(a, c.name):
                    w("        p.pair_ext_req(&mut self.%s, ext_%s, %s, %s)?;" % (a.field, a.field, rust_str(a.xml), rust_str(a.ext)))
                else:
                    w("        p.pair_ext(&mut self.%s, ext_%s, %s, %s)?;" % (a.field, a.field, rust_str(a.xml), rust_str(a.ext)))
        for a in c.attrs:
            if a.required:
                w("        if !seen_%s {" % a.field)
                w("            p.missing_attr(%s)?;" % rust_str(a.xml))
                w("        }")
        w("        Ok(())")
        w("    }")
    # ---- read_child
    if c.fields:
        w("    pub(crate) fn read_child<R: BufRead>(&mut self, p: &mut Parser<R>, pos: &mut usize) -> Result<(), Error> {")
        table = []
        for f in c.fields:
            alts = f.variants if f.kind == "choice" else [(None, f.xml, f.rtype, f.pkind, False, f.ns)]
            for alt in alts:
                table.append((f, alt))
        w("        let k: u8 = match (p.child_ns(), p.child_local()) {")
        for i, (f, alt) in enumerate(table):
            w("            (Ns::%s, b%s) => %d," % (alt[5], rust_str(alt[1]), i))
        w("            _ => 255,")
        w("        };")
        w("        match k {")
        for i, (f, alt) in enumerate(table):
            vn, xml, rtype, pkind, is_vec, ns = alt
            w("            %d => {" % i)
            w("                if !p.order(pos, %d, %s, Self::ORDER)? {" % (f.idx, rust_str(xml)))
            w("                    return Ok(());")
            w("                }")
            if f.kind == "elem" and pkind == "class":
                # Read in place: no child struct moved out of its reader and into the list.
                if f.max != 1:
                    w("                p.child_push(&mut self.%s, %s::read_into)?;" % (f.field, rtype))
                else:
                    w("                if self.%s.is_some() {" % f.field)
                    w("                    if p.child(%s::read)?.is_some() {" % rtype)
                    w("                        p.duplicate(%s)?;" % rust_str(xml))
                    w("                    }")
                    w("                } else {")
                    w("                    p.child_opt(&mut self.%s, %s::read_into)?;" % (f.field, rtype))
                    w("                }")
                w("            }")
                continue
            w("                if let Some(v) = %s {" % read_expr(pkind, rtype, xml))
            if f.kind == "elem":
                if f.max != 1:
                    w("                    self.%s.push(v);" % f.field)
                else:
                    w("                    if self.%s.is_some() {" % f.field)
                    w("                        p.duplicate(%s)?;" % rust_str(xml))
                    w("                    } else {")
                    w("                        self.%s = Some(v);" % f.field)
                    w("                    }")
            else:
                if f.max != 1:
                    w("                    self.%s.push(%s::%s(v));" % (f.field, f.rtype, vn))
                elif is_vec:
                    w("                    match &mut self.%s {" % f.field)
                    w("                        Some(%s::%s(list)) => list.push(v)," % (f.rtype, vn))
                    w("                        Some(_) => p.duplicate(%s)?," % rust_str(xml))
                    w("                        None => self.%s = Some(%s::%s(vec![v]))," % (f.field, f.rtype, vn))
                    w("                    }")
                else:
                    w("                    if self.%s.is_some() {" % f.field)
                    w("                        p.duplicate(%s)?;" % rust_str(xml))
                    w("                    } else {")
                    w("                        self.%s = Some(%s::%s(v));" % (f.field, f.rtype, vn))
                    w("                    }")
            w("                }")
            w("            }")
        w("            _ => p.unexpected_child(Self::ORDER)?,")
        w("        }")
        w("        Ok(())")
        w("    }")
        w("    pub(crate) fn finish<R: BufRead>(&mut self, p: &mut Parser<R>) -> Result<(), Error> {")
        for f in c.fields:
            if_missing(w, f, "p.missing(%s, Self::ORDER)?;" % rust_str(f.xml))
        w("        Ok(())")
        w("    }")
    # ---- read
    if c.xml_name is not None:
        lines(w, """\
    /// Read a new value (children that are classes are read in place, with `read_into`;
    /// this is for the streaming reader, choices and the document root).
    #[allow(dead_code)]
    pub(crate) fn read<R: BufRead>(p: &mut Parser<R>, attrs: Attrs) -> Result<Self, Error> {
        let mut out = Self::default();
        out.read_into(p, attrs)?;
        Ok(out)
    }
    /// Read into `self` (a default value), in place.
    pub(crate) fn read_into<R: BufRead>(&mut self, p: &mut Parser<R>, attrs: Attrs) -> Result<(), Error> {
        let out = self;
        out.read_attrs(p, attrs)?;""")
        if c.text:
            w("        let text = p.read_text()?;")
            if c.text[0] == "String":
                w("        out.value = text;")
            else:
                w("        out.value = %s;" % parse_simple(c.text[1], c.text[0], "&text", '"content"'))
        elif c.mixed_any:
            w("        out.content = p.read_mixed()?;")
        elif c.any_children:
            w("        out.content = p.read_any_children()?;")
        elif c.repeat_seq:
            lines(w, """\
        let mut cur: Option<SEQ> = None;
        let mut pos = 0usize;
        while p.next_child()? {
            if SEQ::starts_round(p) && cur.as_ref().is_some_and(|c| c.round_started()) {
                out.items.extend(cur.take());
                pos = 0;
            }
            cur.get_or_insert_with(Default::default).read_child(p, &mut pos)?;
        }
        out.items.extend(cur.take());
        for item in &mut out.items {
            item.finish(p)?;
        }
        if out.items.is_empty() {
            p.missing("child element", SEQ::ORDER)?;
        }""".replace("SEQ", c.repeat_seq))
        elif c.fields:
            w("        let mut pos = 0usize;")
            w("        while p.next_child()? {")
            w("            out.read_child(p, &mut pos)?;")
            w("        }")
            w("        out.finish(p)?;")
        else:
            w("        p.expect_empty()?;")
        w("        Ok(())")
        w("    }")
    else:
        first = c.fields[0]
        names = first.variants if first.kind == "choice" else [(None, first.xml, None, None, None, first.ns)]
        w("    fn starts_round<R: BufRead>(p: &Parser<R>) -> bool {")
        w("        p.child_ns() == Ns::Iodef && matches!(p.child_local(), %s)" % " | ".join("b%s" % rust_str(v[1]) for v in names))
        w("    }")
        w("    fn round_started(&self) -> bool {")
        w("        self.%s.%s" % (first.field, "is_some()" if first.max == 1 else "is_empty() == false"))
        w("    }")
    # ---- write
    if c.xml_name is not None:
        w("    pub(crate) fn write_attrs<W: Write>(&self, w: &mut XmlOut<W>) -> io::Result<()> {")
        for name, val in c.fixed:
            w("        w.attr(%s, %s)?;" % (rust_str(name), rust_str(val)))
        for a in c.attrs:
            if is_address_category(a, c.name):
                w("        {")
                w("            let v = &self.%s;" % a.field)
            else:
                w("        if let Some(v) = &self.%s {" % a.field)
            if a.kind == "enum":
                w("            w.attr(%s, v.as_str())?;" % rust_str(a.xml))
                if a.ext:
                    w("            if let Some(e) = v.ext() {")
                    w("                w.attr(%s, e)?;" % rust_str(a.ext))
                    w("            }")
            elif a.kind in ("string", "id", "idref", "timezone"):
                w("            w.attr(%s, v)?;" % rust_str(a.xml))
            else:
                w("            w.attr_display(%s, v)?;" % rust_str(a.xml))
            w("        }")
        w("        Ok(())")
        w("    }")
    w("    pub(crate) fn write_children<W: Write>(&self, w: &mut XmlOut<W>, from: usize, to: usize) -> io::Result<()> {")
    w("        let _ = (&w, from, to);")
    # Content that is not a field is written at the first child position.
    at_start = []
    if c.text:
        if c.text[0] == "String":
            at_start.append("w.text(&self.value)?;")
        else:
            at_start.append("if let Some(v) = &self.value {\n    w.text_display(v)?;\n}")
    if c.mixed_any:
        at_start.append("w.mixed(&self.content)?;")
    if c.any_children:
        at_start.append("for x in &self.content {\n    w.any(x)?;\n}")
    if c.repeat_seq:
        at_start.append("for item in &self.items {\n    item.write_children(w, 0, usize::MAX)?;\n}")
    for body in at_start:
        w("        if from == 0 {")
        for line in body.split("\n"):
            w("            " + line)
        w("        }")
    for f in c.fields:
        w("        if (from..to).contains(&%d) {" % f.idx)
        if f.kind == "choice":
            if f.max != 1:
                w("            for x in &self.%s {" % f.field)
            else:
                w("            if let Some(x) = &self.%s {" % f.field)
            w("                x.write(w)?;")
            w("            }")
        else:
            if f.max != 1:
                w("            for x in &self.%s {" % f.field)
            else:
                w("            if let Some(x) = &self.%s {" % f.field)
            w("                %s;" % leaf_write(f.pkind, "x", rust_str(f.xml)))
            w("            }")
        w("        }")
    w("        Ok(())")
    w("    }")
    if c.xml_name is not None and c.name != "Document":
        lines(w, """\
    pub(crate) fn write<W: Write>(&self, w: &mut XmlOut<W>, name: &str) -> io::Result<()> {
        w.start(name)?;
        self.write_attrs(w)?;
        self.write_children(w, 0, usize::MAX)?;
        w.end(name)
    }""")
    # ---- check
    w("    pub(crate) fn check(&self, c: &mut Checker) {")
    for a in c.attrs:
        if a.required:
            w("        if self.%s.is_none() {" % a.field)
            w("            c.missing_attr(%s);" % rust_str(a.xml))
            w("        }")
        cv = check_value(a.kind, "v", rust_str(a.xml))
        if cv:
            if is_address_category(a, c.name):
                w("        {")
                w("            let v = &self.%s;" % a.field)
            else:
                w("        if let Some(v) = &self.%s {" % a.field)
            w("            %s" % cv)
            w("        }")
    if c.text:
        if c.text[0] == "String" and c.text[1] in ("id", "idref"):
            w("        %s" % check_value(c.text[1], "&self.value", '"content"'))
        elif c.text[0] == "String":
            w("        c.text(&self.value, \"content\");")
        else:
            cv = check_value(c.text[1], "v", '"content"')
            if cv:
                lines(w, "        if let Some(v) = &self.value {\n            %s\n        }" % cv)
            else:
                lines(w, """\
        if self.value.is_none() {
            c.missing("content");
        }""")
    if c.mixed_any:
        w("        c.mixed(&self.content);")
    if c.any_children:
        lines(w, """\
        for x in &self.content {
            c.any(x, "content");
        }""")
    if c.repeat_seq:
        lines(w, """\
        if self.items.is_empty() {
            c.missing("child element");
        }
        for x in &self.items {
            x.check(c);
        }""")
    for f in c.fields:
        if_missing(w, f, "c.missing(%s);" % rust_str(f.xml))
        if f.kind == "choice":
            cv = "x.check(c);"
        else:
            cv = check_value(f.pkind, "x", rust_str(f.xml))
        if cv:
            if f.max != 1 and f.kind == "elem" and f.pkind == "class":
                w("        for (i, x) in self.%s.iter().enumerate() {" % f.field)
                w("            c.enter_at(%s, i);" % rust_str(f.xml))
                w("            x.check(c);")
                w("            c.leave();")
                w("        }")
                continue
            if f.max != 1:
                w("        for x in &self.%s {" % f.field)
            else:
                w("        if let Some(x) = &self.%s {" % f.field)
            w("            %s" % cv)
            w("        }")
    if c.name in hooks:
        w("        c.%s(self);" % hooks[c.name])
    w("    }")
    w("}")
    w("")


def read_expr(pkind, rtype, xml):
    if pkind == "class":
        return "p.child(%s::read)?" % rtype
    if pkind == "any":
        return "p.child(Parser::read_any_element)?"
    if pkind == "string":
        return "p.child(Parser::read_text_only)?"
    if pkind == "enum":
        return "p.child(|p, a| p.read_text_value(a, |p, t| p.enum_value::<%s>(t, %s)))?.flatten()" % (rtype, rust_str(xml))
    return "p.child(|p, a| p.read_text_value(a, |p, t| p.value_%s(t, %s)))?.flatten()" % (pkind, rust_str(xml))


# ---------------------------------------------------------------- v1 <-> v2 conversion

def members(gen, c):
    """(field name, category, cardinality, rtype, pkind, extra) for every member of a class."""
    out = []
    for a in c.attrs:
        card = "one" if is_address_category(a, c.name) else "opt"
        out.append((a.field, "attr", card, a.rtype, a.kind, a))
    if c.text:
        out.append(("value", "text", "one" if c.text[0] == "String" else "opt", c.text[0], c.text[1], None))
    if c.mixed_any:
        out.append(("content", "mixed", "vec", "ExtensionContent", "mixed", None))
    if c.any_children:
        out.append(("content", "anychildren", "vec", "AnyElement", "any", None))
    if c.repeat_seq:
        out.append(("items", "items", "vec", c.repeat_seq, "class", None))
    for f in c.fields:
        card = "vec" if f.max != 1 else "opt"
        if f.kind == "choice":
            out.append((f.field, "choice", card, f.rtype, "choice", f))
        else:
            out.append((f.field, "elem", card, f.rtype, f.pkind, f))
    return out


SIMPLE_CLONE = {"String", "DateTime", "i64", "u16", "Float", "Portlist", "AnyElement", "ExtensionContent"}


COPY = {"i64", "u16", "Float"}


def conv_one(src_gen, dst_gen, s, d, direction, expr, what, shared):
    """(Rust expression, fallible) converting one value `expr` (a reference).

    A fallible expression has type Option<T>, an infallible one type T."""
    (sname, scat, scard, srt, spk, sx) = s
    (dname, dcat, dcard, drt, dpk, dx) = d
    if spk == "enum" and dpk == "enum":
        return ("conv_enum::<%s::%s, %s::%s>(%s, n, %s)" % (direction[0], srt, direction[1], drt, expr, rust_str(what)), True)
    if spk in ("class",) and dpk == "class" and srt == drt and srt in shared:
        return ("%s_%s(%s, n)" % (direction[2], snake(srt), expr), False)
    if spk == "choice" and dpk == "choice" and (srt, drt) in CHOICE_PAIRS:
        return ("%s_%s(%s, n)" % (direction[2], snake(srt), expr), True)
    if srt == drt and srt in COPY:
        return ("*%s" % expr, False)
    if srt == drt and (srt in SIMPLE_CLONE or srt == "String"):
        return ("%s.clone()" % expr, False)
    return None


CHOICE_PAIRS = set()


def emit_conversions(g1, g2, out_path):
    L = []
    w = L.append
    w("// @generated by iodef/codegen/gen.py. Do not edit by hand.")
    w("//! Structural v1 <-> v2 conversion: same-named classes and members are carried over,")
    w("//! everything else is reported as not carried. Hand-written fix-ups live in `convert.rs`.")
    w("")
    w("// Uniform generated shapes: not every conversion uses every helper or parameter, and")
    w("// fields are filled one by one after `Default::default()`.")
    w("#![allow(unused_variables, unused_mut, dead_code, clippy::field_reassign_with_default)]")
    w("")
    w("use super::{conv_enum, fixup, Notes};")
    w("use crate::{v1, v2};")
    w("")
    shared = sorted(set(g1.classes) & set(g2.classes))
    choices1 = {name: v for name, v in g1.choice_enums}
    choices2 = {name: v for name, v in g2.choice_enums}
    for ch in sorted(set(choices1) & set(choices2)):
        CHOICE_PAIRS.add((ch, ch))
    fix_names = FIXUPS
    for (sg, dg, sm, dm, pre) in ((g1, g2, "v1", "v2", "v1_to_v2"), (g2, g1, "v2", "v1", "v2_to_v1")):
        direction = (sm, dm, pre)
        # choice conversions
        sch = {name: v for name, v in sg.choice_enums}
        dch = {name: v for name, v in dg.choice_enums}
        for ch in sorted(set(sch) & set(dch)):
            w("pub(super) fn %s_%s(x: &%s::%s, n: &mut Notes) -> Option<%s::%s> {" % (pre, snake(ch), sm, ch, dm, ch))
            w("    match x {")
            dvars = {v[0]: v for v in dch[ch]}
            for (vn, xml, rtype, pkind, is_vec, ns) in sch[ch]:
                dv = dvars.get(vn)
                expr = None
                if dv is not None:
                    s_ = (vn, "elem", "vec" if is_vec else "one", rtype, pkind, None)
                    d_ = (vn, "elem", "vec" if dv[4] else "one", dv[2], dv[3], None)
                    r = conv_one(sg, dg, s_, d_, direction, "v", xml, shared)
                    if r is not None:
                        one, fallible = r
                        if is_vec and dv[4]:
                            m = "filter_map" if fallible else "map"
                            expr = "Some(%s::%s::%s(x.iter().%s(|v| %s).collect()))" % (dm, ch, vn, m, one)
                        elif not is_vec and not dv[4]:
                            body = one.replace("(v,", "(x,").replace("(v)", "(x)")
                            if body.startswith("*v"):
                                body = "*x"
                            elif body == "v.clone()":
                                body = "x.clone()"
                            expr = ("(%s).map(%s::%s::%s)" % (body, dm, ch, vn)) if fallible else ("Some(%s::%s::%s(%s))" % (dm, ch, vn, body))
                if expr is None:
                    w("        %s::%s::%s(_) => {" % (sm, ch, vn))
                    w("            n.lost(%s);" % rust_str(xml))
                    w("            None")
                    w("        }")
                else:
                    w("        %s::%s::%s(x) => %s," % (sm, ch, vn, expr))
            w("    }")
            w("}")
            w("")
        for cname in shared:
            sc = sg.classes[cname]
            dc = dg.classes[cname]
            smem = {m[0]: m for m in members(sg, sc)}
            dmem = members(dg, dc)
            w("pub(super) fn %s_%s(x: &%s::%s, n: &mut Notes) -> %s::%s {" % (pre, snake(cname), sm, cname, dm, cname))
            w("    let mut out = %s::%s::default();" % (dm, cname))
            used = set()
            for d in dmem:
                s = smem.get(d[0])
                if s is None or s[1] != d[1] and not (s[1] in ("attr", "elem") and d[1] in ("attr", "elem")):
                    continue
                what = "%s.%s" % (cname, d[0])
                r = conv_one(sg, dg, s, d, direction, "v", what, shared)
                if r is None:
                    continue
                one, fallible = r
                used.add(d[0])
                scard, dcard = s[2], d[2]
                f = d[0]
                bind = "let v = &x.%s;" % f
                if scard == "one" and dcard == "one":
                    if fallible:
                        w("    if let Some(v) = { %s %s } {" % (bind, one))
                        w("        out.%s = v;" % f)
                        w("    }")
                    else:
                        w("    out.%s = { %s %s };" % (f, bind, one))
                elif scard == "one" and dcard == "opt":
                    w("    out.%s = { %s %s };" % (f, bind, one if fallible else "Some(%s)" % one))
                elif scard == "opt" and dcard == "one":
                    m = "and_then" if fallible else "map"
                    w("    if let Some(v) = x.%s.as_ref().%s(|v| %s) {" % (f, m, one))
                    w("        out.%s = v;" % f)
                    w("    }")
                elif scard == "opt" and dcard == "opt":
                    m = "and_then" if fallible else "map"
                    if one == "v.clone()":
                        w("    out.%s = x.%s.clone();" % (f, f))
                    elif one == "*v":
                        w("    out.%s = x.%s;" % (f, f))
                    else:
                        w("    out.%s = x.%s.as_ref().%s(|v| %s);" % (f, f, m, one))
                elif dcard == "vec":
                    if scard == "one":
                        w("    out.%s = { %s %s }.into_iter().collect();" % (f, bind, one if fallible else "Some(%s)" % one))
                    elif one == "v.clone()" and scard == "vec":
                        w("    out.%s = x.%s.clone();" % (f, f))
                    else:
                        m = "filter_map" if fallible else "map"
                        w("    out.%s = x.%s.iter().%s(|v| %s).collect();" % (f, f, m, one))
                elif scard == "vec":
                    w("    if x.%s.len() > 1 {" % f)
                    w("        n.lost(%s);" % rust_str("%s.%s beyond the first" % (cname, f)))
                    w("    }")
                    m = "and_then" if fallible else "map"
                    if dcard == "opt":
                        w("    out.%s = x.%s.first().%s(|v| %s);" % (f, f, m, one))
                    else:
                        w("    if let Some(v) = x.%s.first().%s(|v| %s) {" % (f, m, one))
                        w("        out.%s = v;" % f)
                        w("    }")
            for s in members(sg, sc):
                if s[0] in used:
                    continue
                cond = "!x.%s.is_empty()" % s[0] if s[2] == "vec" else ("x.%s.is_some()" % s[0] if s[2] == "opt" else "false")
                if s[2] == "one" and s[1] == "text":
                    cond = "!x.value.is_empty()"
                if cond == "false":
                    continue
                w("    if %s {" % cond)
                w("        n.lost(%s);" % rust_str("%s.%s" % (cname, s[0])))
                w("    }")
            if (pre, cname) in fix_names:
                w("    fixup::%s_%s(x, &mut out, n);" % (pre, snake(cname)))
            w("    out")
            w("}")
            w("")
    text = "\n".join(L) + "\n"
    text = text.replace(".map(|v| v.clone())", ".cloned()")
    with open(out_path, "w") as f:
        f.write(text)


FIXUPS = {
    ("v1_to_v2", "Document"), ("v2_to_v1", "Document"),
    ("v1_to_v2", "Incident"), ("v2_to_v1", "Incident"),
    ("v1_to_v2", "Assessment"), ("v2_to_v1", "Assessment"),
    ("v1_to_v2", "Node"), ("v2_to_v1", "Node"),
    ("v1_to_v2", "RelatedActivity"), ("v2_to_v1", "RelatedActivity"),
    ("v1_to_v2", "Contact"), ("v2_to_v1", "Contact"),
    ("v1_to_v2", "Service"), ("v2_to_v1", "Service"),
    ("v1_to_v2", "Method"), ("v2_to_v1", "Method"),
    ("v1_to_v2", "Counter"), ("v2_to_v1", "Counter"),
    ("v1_to_v2", "Reference"), ("v2_to_v1", "Reference"),
    ("v2_to_v1", "System"), ("v2_to_v1", "EventData"),
}


HOOKS = {
    "v2": {"Node": "hook_v2_node", "Address": "hook_v2_address", "Service": "hook_v2_service",
           "Flow": "hook_v2_flow"},
    "v1": {"Address": "hook_v1_address", "Service": "hook_v1_service"},
}


def main():
    ap = argparse.ArgumentParser(description="Generate the typed IODEF model from the XSDs.")
    ap.add_argument("--schemas", default=SCHEMAS,
                    help="directory holding iodef-2.0.xsd and iodef-1.0.xsd (default: %(default)s)")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "src"),
                    help="source directory to write v2/, v1/ and convert/ into (default: iodef/src)")
    args = ap.parse_args()
    for xsd in ("iodef-2.0.xsd", "iodef-1.0.xsd"):
        if not os.path.isfile(os.path.join(args.schemas, xsd)):
            raise SystemExit("gen.py: schema %s not found (use --schemas DIR)" % os.path.join(args.schemas, xsd))
    gens = {}
    for version, xsd, ns, outdir in (
        ("v2", "iodef-2.0.xsd", "urn:ietf:params:xml:ns:iodef-2.0", "v2"),
        ("v1", "iodef-1.0.xsd", "urn:ietf:params:xml:ns:iodef-1.0", "v1"),
    ):
        g = Gen(os.path.join(args.schemas, xsd), version)
        g.run()
        label = "IODEF %s (%s)" % ("2.0, RFC 7970" if version == "v2" else "1.0, RFC 5070", xsd)
        out = os.path.join(args.out, outdir, "model.rs")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        emit(g, out, ns, label, HOOKS[version])
        gens[version] = g
        print("%s: %d classes, %d enums, %d choices" % (version, len(g.classes), len(g.enums), len(g.choice_enums)))
    out = os.path.join(args.out, "convert", "generated.rs")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    emit_conversions(gens["v1"], gens["v2"], out)
    # Keep the committed files `cargo fmt` clean: formatted with the workspace's rustfmt
    # settings, if it has any, also when written outside the tree.
    import subprocess
    root = os.path.join(HERE, "..", "..")
    rustfmt = ["rustfmt", "--edition", "2021"]
    for cfg in ("rustfmt.toml", ".rustfmt.toml"):
        if os.path.isfile(os.path.join(root, cfg)):
            rustfmt += ["--config-path", os.path.join(root, cfg)]
            break
    for f in ("v2/model.rs", "v1/model.rs", "convert/generated.rs"):
        subprocess.run(rustfmt + [os.path.join(args.out, f)], check=True)


if __name__ == "__main__":
    main()
