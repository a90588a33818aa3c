//! `/q/{token}`: the investigation questionnaire an employee opens from the CSIRT's mail. No
//! login: the link's token is the only key, and the page shows only its own case. The
//! aggregator (`[reports]`, a reporter with `cases = true`) checks the token, the expiry and
//! that the case is not answered yet, and triages the answers; the page never shows the
//! colour. The token is never logged; at most `QUESTIONNAIRE_SLOTS` lookups run at once, so
//! a flood of guessed links cannot tie up the aggregator.

use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{html_response, St};
use crate::html::{bare_page, esc};
use crate::reports::Refusal;
use teiten_exchange::cases::store::{AnswersInput, LinkView};
use teiten_exchange::cases::QuestionKind;

/// Lookups and answers in flight at most.
pub(super) const QUESTIONNAIRE_SLOTS: usize = 16;
/// Form fields taken at most.
const MAX_FIELDS: usize = 200;

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    html_response(
        status,
        bare_page(
            title,
            &format!("<p class=\"err\" id=\"problem\">{}</p>", esc(text)),
        ),
    )
}

fn refused(r: Refusal) -> Response {
    match r {
        Refusal::Refused { status, detail } if matches!(status, 404 | 409 | 410 | 422) => {
            let title = match status {
                409 => "Already answered",
                410 => "Link expired",
                422 => "Please check your answers",
                _ => "Link not valid",
            };
            message(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                title,
                &detail,
            )
        }
        Refusal::Refused { status, detail } => {
            tracing::error!(status, %detail, "The aggregator refused the dashboard's questionnaire request ([reports] token without cases = true?)");
            message(
                StatusCode::BAD_GATEWAY,
                "Not available",
                "The questionnaire cannot be shown now; please tell the CSIRT.",
            )
        }
        Refusal::Unavailable => message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not available",
            "The questionnaire cannot be shown now; please try again in a few minutes.",
        ),
    }
}

/// The token as the aggregator takes it and the aggregator to ask, or the answer to give
/// instead.
#[allow(clippy::result_large_err)]
fn checked<'a>(
    token: &str,
    aggregator: Option<&'a crate::reports::Aggregator>,
) -> Result<(String, &'a crate::reports::Aggregator), Response> {
    if !(token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(message(
            StatusCode::NOT_FOUND,
            "Link not valid",
            "This link is not valid: check that it was copied whole from the newest mail.",
        ));
    }
    match aggregator {
        Some(a) => Ok((token.to_ascii_lowercase(), a)),
        None => Err(message(
            StatusCode::NOT_FOUND,
            "Not here",
            "questionnaires are not served by this dashboard",
        )),
    }
}

fn utc(t: u32) -> String {
    chrono::DateTime::from_timestamp(i64::from(t), 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// The page of a link: the detection and the form.
fn form_page(token: &str, v: &LinkView, problem: Option<&str>) -> String {
    let q = &v.questionnaire;
    let mut b = String::new();
    if let Some(p) = problem {
        let _ = write!(b, "<p class=\"err\" id=\"problem\">{}</p>", esc(p));
    }
    let _ = write!(
        b,
        "<p>Dear {name},</p><p>{intro}</p><table id=\"detection\">\
         <tr><th class=\"l\">What</th><td class=\"l\">{what}</td></tr>\
         <tr><th class=\"l\">Computer</th><td class=\"l\">{host}</td></tr>\
         <tr><th class=\"l\">When</th><td class=\"l\">{when}</td></tr></table>\
         <p>This link works once, until {expires}.</p>\
         <form method=\"post\" action=\"/q/{token}\" id=\"questionnaire\">",
        name = esc(&v.name),
        intro = esc(&q.intro),
        what = esc(&v.description),
        host = esc(&v.host),
        when = utc(v.detected),
        expires = utc(v.expires),
        token = esc(token),
    );
    for question in &q.questions {
        let id = esc(&question.id);
        let _ = write!(
            b,
            "<fieldset id=\"q-{id}\"><legend>{}{}</legend>",
            esc(&question.text),
            if question.required { " *" } else { "" }
        );
        match question.kind {
            QuestionKind::Text => {
                let _ = write!(
                    b,
                    "<textarea name=\"{id}\" maxlength=\"{}\" rows=\"4\" cols=\"70\"></textarea>",
                    teiten_exchange::cases::config::MAX_TEXT
                );
            }
            QuestionKind::Single | QuestionKind::Multiple => {
                let kind = if question.kind == QuestionKind::Single {
                    "radio"
                } else {
                    "checkbox"
                };
                // A browser asks for a required radio group itself; the aggregator checks all.
                let required = if question.required && question.kind == QuestionKind::Single {
                    " required"
                } else {
                    ""
                };
                for c in &question.choices {
                    let _ = write!(
                        b,
                        "<label><input type=\"{kind}\" name=\"{id}\" value=\"{v}\" id=\"{id}-{v}\"{required}> {t}</label><br>",
                        v = esc(&c.id),
                        t = esc(&c.text)
                    );
                }
            }
        }
        b.push_str("</fieldset>");
    }
    b.push_str(
        "<p>* needs an answer</p><button type=\"submit\" id=\"send\">Send my answers</button></form>",
    );
    bare_page(&q.title, &b)
}

/// `GET /q/{token}`.
pub(super) async fn show(State(state): St, UrlPath(token): UrlPath<String>) -> Response {
    let (token, aggregator) = match checked(&token, state.aggregator.as_ref()) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let Ok(_slot) = state.questionnaire_slots.try_acquire() else {
        return refused(Refusal::Unavailable);
    };
    match aggregator.questionnaire(&token).await {
        Ok(v) => html_response(StatusCode::OK, form_page(&token, &v, None)),
        Err(r) => refused(r),
    }
}

/// `POST /q/{token}`: the form's fields (a question's id, once per chosen choice).
pub(super) async fn submit(
    State(state): St,
    UrlPath(token): UrlPath<String>,
    body: Bytes,
) -> Response {
    let (token, aggregator) = match checked(&token, state.aggregator.as_ref()) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let fields: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(e) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Please check your answers",
                &format!("the form could not be read: {e}"),
            )
        }
    };
    if fields.len() > MAX_FIELDS {
        return message(
            StatusCode::BAD_REQUEST,
            "Please check your answers",
            &format!("more than {MAX_FIELDS} fields"),
        );
    }
    let mut answers = AnswersInput::new();
    for (k, v) in fields {
        answers.entry(k).or_default().push(v);
    }
    let Ok(_slot) = state.questionnaire_slots.try_acquire() else {
        return refused(Refusal::Unavailable);
    };
    match aggregator.answer(&token, &answers).await {
        Ok(_) => html_response(
            StatusCode::OK,
            bare_page(
                "Thank you",
                "<p id=\"thanks\">Your answers were received. The CSIRT will contact you if \
                 anything more is needed.</p>",
            ),
        ),
        Err(Refusal::Refused {
            status: 422,
            detail,
        }) => {
            // The form again, with what to correct.
            match aggregator.questionnaire(&token).await {
                Ok(v) => html_response(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    form_page(&token, &v, Some(&detail)),
                ),
                Err(r) => refused(r),
            }
        }
        Err(r) => refused(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_has_every_question_escaped() {
        let mut q = teiten_exchange::cases::default_questionnaires().remove(0);
        q.questions[0].choices[0].text = "<script>alert(1)</script>".into();
        let v = LinkView {
            questionnaire: q,
            name: "Tanaka <b>".into(),
            description: "ClamAV found X in /media/usb0/a.exe".into(),
            host: "pc-17".into(),
            detected: 1_764_000_000,
            expires: 1_764_600_000,
        };
        let page = form_page(
            &"a".repeat(64),
            &v,
            Some("question `owner` needs an answer"),
        );
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("Tanaka &lt;b&gt;"));
        for id in ["owner-company", "places-customer", "scanned-no"] {
            assert!(page.contains(&format!("id=\"{id}\"")), "{id}");
        }
        assert!(page.contains("type=\"checkbox\" name=\"places\""));
        assert!(page.contains("<textarea name=\"notes\""));
        assert!(page.contains("id=\"problem\""));
    }

    #[test]
    fn only_tokens_of_the_right_shape_are_looked_up() {
        let not_here = |r: Response| r.status();
        // Well-formed, but no aggregator configured: "not here", not "not valid".
        assert_eq!(
            checked(&"AB".repeat(32), None)
                .map_err(not_here)
                .unwrap_err(),
            StatusCode::NOT_FOUND
        );
        for bad in [
            "",
            "../x",
            &"a".repeat(63),
            &"g".repeat(64),
            &"a".repeat(65),
        ] {
            assert!(checked(bad, None).is_err(), "{bad}");
        }
    }
}
