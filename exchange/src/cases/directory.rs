//! The employee directory: who works on an affected host, and their manager. Either an LDAP
//! server (`[exchange.cases.ldap]`, see [`super::ldap`]) or, by default, a TOML file of
//! `[[employee]]` entries, each with the hosts (names or addresses) that are theirs:
//!
//! ```toml
//! [[employee]]
//! uid = "tanaka"
//! name = "Tanaka Hanako"
//! email = "tanaka@corp.example"
//! department = "Sales"
//! manager = "sato"                  # the manager's uid
//! hosts = ["pc-17.corp.example", "10.20.0.17"]
//! ```

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use teiten_store::{Error, Result};

use super::ldap::{LdapDirectory, LookupError};

/// One employee.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Employee {
    /// Their user id. Required.
    pub uid: String,
    /// Their name. Required.
    pub name: String,
    /// Their e-mail address. Required.
    pub email: String,
    /// Their department. Default none.
    #[serde(default)]
    pub department: String,
    /// Their manager's uid. Default none.
    #[serde(default)]
    pub manager: Option<String>,
    /// Host names (case-insensitive) and addresses that are theirs.
    #[serde(default)]
    pub hosts: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "employee")]
    employees: Vec<Employee>,
}

/// An employee with their manager resolved, as a case stores them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Person {
    /// uid.
    pub uid: String,
    /// Name.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// Department.
    pub department: String,
    /// The manager's e-mail address (empty: none).
    pub manager_email: String,
}

/// What a lookup of a host found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The employee on the host.
    Employee(Person),
    /// Nobody to ask, and why (the case's note): no entry, or (LDAP) several entries or an
    /// entry without a uid, name or address.
    Nobody(String),
}

impl Found {
    /// The employee, if one was found.
    pub fn person(&self) -> Option<&Person> {
        match self {
            Found::Employee(p) => Some(p),
            Found::Nobody(_) => None,
        }
    }
}

/// The directory: a file loaded at start, or an LDAP server asked per lookup.
#[derive(Debug, Clone)]
pub enum Directory {
    /// `exchange.cases.directory`, loaded.
    File(EmployeeFile),
    /// `[exchange.cases.ldap]`, checked.
    Ldap(LdapDirectory),
}

impl Directory {
    /// Reads and checks a directory file; errors name the file and the entry.
    pub fn load(path: &Path) -> Result<Directory> {
        EmployeeFile::load(path).map(Directory::File)
    }

    /// Parses and checks a directory file's text.
    pub fn parse(text: &str) -> std::result::Result<Directory, String> {
        EmployeeFile::parse(text).map(Directory::File)
    }

    /// Who works on `host` (a name or an address), with their manager's address. Fails only
    /// when the LDAP server could not be asked; the file always answers.
    pub async fn lookup(&self, host: &str) -> std::result::Result<Found, LookupError> {
        match self {
            Directory::File(f) => Ok(match f.for_host(host) {
                Some(p) => Found::Employee(p),
                None => Found::Nobody(format!("no employee in the directory for host {host}")),
            }),
            Directory::Ldap(l) => l.lookup(host).await,
        }
    }
}

impl std::fmt::Display for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Directory::File(d) => match d.len() {
                1 => write!(f, "file (1 employee)"),
                n => write!(f, "file ({n} employees)"),
            },
            Directory::Ldap(l) => l.fmt(f),
        }
    }
}

/// A directory file, loaded.
#[derive(Debug, Clone, Default)]
pub struct EmployeeFile {
    employees: Vec<Employee>,
}

fn bad(reason: String) -> Error {
    Error::ConfigInvalid {
        field: "exchange.cases.directory",
        reason,
    }
}

impl EmployeeFile {
    /// Reads and checks the file; errors name the file and the entry.
    pub fn load(path: &Path) -> Result<EmployeeFile> {
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
        EmployeeFile::parse(&text).map_err(|e| bad(format!("{}: {e}", path.display())))
    }

    /// Parses and checks a directory file's text.
    pub fn parse(text: &str) -> std::result::Result<EmployeeFile, String> {
        let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
        for (i, e) in f.employees.iter().enumerate() {
            let at = format!("employee {} (`{}`)", i + 1, e.uid);
            if e.uid.trim().is_empty() {
                return Err(format!("{at}: uid is empty"));
            }
            if f.employees[..i].iter().any(|o| o.uid == e.uid) {
                return Err(format!("{at}: uid given twice"));
            }
            e.email
                .parse::<lettre::message::Mailbox>()
                .map_err(|err| format!("{at}: email `{}`: {err}", e.email))?;
            if let Some(m) = &e.manager {
                if !f.employees.iter().any(|o| &o.uid == m) {
                    return Err(format!("{at}: manager `{m}` is not in the directory"));
                }
            }
            for h in &e.hosts {
                if let Some(o) = f.employees[..i]
                    .iter()
                    .find(|o| o.hosts.iter().any(|oh| same_host(oh, h)))
                {
                    return Err(format!("{at}: host `{h}` is also `{}`'s", o.uid));
                }
            }
        }
        Ok(EmployeeFile {
            employees: f.employees,
        })
    }

    /// Employees in it.
    pub fn len(&self) -> usize {
        self.employees.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.employees.is_empty()
    }

    /// Who works on `host` (a name or an address), with their manager's address.
    pub fn for_host(&self, host: &str) -> Option<Person> {
        let e = self
            .employees
            .iter()
            .find(|e| e.hosts.iter().any(|h| same_host(h, host)))?;
        let manager_email = e
            .manager
            .as_ref()
            .and_then(|m| self.employees.iter().find(|o| &o.uid == m))
            .map(|m| m.email.clone())
            .unwrap_or_default();
        Some(Person {
            uid: e.uid.clone(),
            name: e.name.clone(),
            email: e.email.clone(),
            department: e.department.clone(),
            manager_email,
        })
    }
}

/// Host names compare case-insensitively without a trailing dot; addresses as addresses.
fn same_host(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => x == y,
        (Err(_), Err(_)) => a
            .trim_end_matches('.')
            .eq_ignore_ascii_case(b.trim_end_matches('.')),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = r#"
[[employee]]
uid = "sato"
name = "Sato Jiro"
email = "sato@corp.example"
department = "Sales"

[[employee]]
uid = "tanaka"
name = "Tanaka Hanako"
email = "tanaka@corp.example"
department = "Sales"
manager = "sato"
hosts = ["PC-17.corp.example", "10.20.0.17"]
"#;

    #[test]
    fn hosts_resolve_to_employees_and_their_managers() {
        let d = EmployeeFile::parse(DIR).unwrap();
        let p = d.for_host("pc-17.corp.example.").unwrap();
        assert_eq!(
            (p.uid.as_str(), p.manager_email.as_str()),
            ("tanaka", "sato@corp.example")
        );
        assert_eq!(d.for_host("10.20.0.17").unwrap().uid, "tanaka");
        assert_eq!(d.for_host("::ffff:10.20.0.18"), None);
        assert_eq!(d.for_host("pc-18.corp.example"), None);
    }

    #[test]
    fn bad_directories_say_which_entry() {
        let err = |t: &str| EmployeeFile::parse(t).unwrap_err();
        assert!(
            err(&DIR.replace("manager = \"sato\"", "manager = \"kato\""))
                .contains("employee 2 (`tanaka`): manager `kato` is not in the directory")
        );
        assert!(err(&DIR.replace("tanaka@corp.example", "not an address")).contains("email"));
        assert!(err(&format!(
            "{DIR}\n[[employee]]\nuid = \"x\"\nname = \"X\"\nemail = \"x@corp.example\"\nhosts = [\"10.20.0.17\"]\n"
        ))
        .contains("host `10.20.0.17` is also `tanaka`'s"));
        assert!(err("[[employee]]\nuid = \"a\"\n").contains("missing field"));
    }

    #[tokio::test]
    async fn the_file_answers_lookups() {
        let d = Directory::parse(DIR).unwrap();
        assert_eq!(d.to_string(), "file (2 employees)");
        let found = d.lookup("10.20.0.17").await.unwrap();
        assert_eq!(found.person().unwrap().uid, "tanaka");
        assert_eq!(
            d.lookup("pc-18.corp.example").await.unwrap(),
            Found::Nobody("no employee in the directory for host pc-18.corp.example".into())
        );
    }
}
