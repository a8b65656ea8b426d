//! The email templates: files a promoter can edit, loaded from a directory at startup.
//!
//! Layout: `{dir}/{language}/{kind}.subject.txt`, `{kind}.txt` (the text part) and
//! `{kind}.html` (the HTML part), for each [`Language`] and [`EmailKind`]; the shipped set
//! is `config/notifications/templates/`. The engine is minijinja (Jinja2 syntax; pure Rust,
//! no proc macros): `.html` templates are HTML-autoescaped, the others are not.
//!
//! A bad template fails [`Templates::load`], at startup, naming the file and line: a missing
//! file, a syntax error, or a name the template uses that the context does not have
//! (undefined names are errors, and every template is rendered once with a sample context
//! when loaded). A promoter's typo is found when hakken starts, not when a buyer pays.
//!
//! What templates see is [`EmailContext`]: text fields already formatted in the event's
//! language (`starts_at`, each ticket's `place`).

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

use crate::email::EmailKind;
use crate::language::Language;

/// Longest template file read: templates are a page of text; more is a wrong file.
pub const TEMPLATE_BYTES_MAX: u64 = 256 << 10;

/// The longest subject a template may render (RFC 5322 advises lines under 78
/// characters; an encoded subject folds, but a paragraph is a template mistake).
pub const SUBJECT_CHARS_MAX: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("email template {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("email template {path} is larger than {TEMPLATE_BYTES_MAX} bytes")]
    TooLarge { path: PathBuf },
    #[error("email template {path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
    #[error("email template {name}: {detail}")]
    Render { name: String, detail: String },
}

/// What every template is rendered with.
#[derive(Debug, Clone, Serialize)]
pub struct EmailContext {
    pub event_name: String,
    /// Formatted in the venue's time zone and the event's language.
    pub starts_at: String,
    pub venue_name: String,
    pub holder_name: String,
    /// The order's id (for a voided late payment, which has no order: the hold's id).
    pub order_id: String,
    /// Empty for the kinds that carry no tickets (refund, voided late payment).
    pub tickets: Vec<TicketContext>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TicketContext {
    pub id: String,
    /// Formatted in the event's language (`S101ブロック B列 16番`).
    pub place: String,
    pub ticket_type: String,
    /// The printable page's URL.
    pub page_url: String,
    /// The inline QR image's Content-ID: `<img src="cid:{{ ticket.qr_cid }}">`. Empty when
    /// the kind carries no QR codes.
    pub qr_cid: String,
}

/// The three templates of one kind in one language, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedParts {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Every template, parsed and checked. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Templates {
    environment: Environment<'static>,
}

impl Templates {
    /// Reads and checks every template under `dir`.
    pub fn load(dir: &Path) -> Result<Templates, TemplateError> {
        let mut environment = Environment::new();
        // A name the context lacks is an error, not an empty string: typos fail at load.
        environment.set_undefined_behavior(UndefinedBehavior::Strict);
        // Block tags take their line with them (`{% for %}` lines leave no blank lines in
        // the text part), and a file's last newline is kept: text parts end as written.
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .expect("the default delimiters are valid");
        environment.set_syntax(syntax);
        for language in Language::ALL {
            for kind in EmailKind::ALL {
                for part in Part::ALL {
                    let name = template_name(language, kind, part);
                    let path = dir.join(&name);
                    let source = read_template(&path)?;
                    environment
                        .add_template_owned(name, source)
                        .map_err(|error| TemplateError::Invalid { path: path.clone(), detail: describe(&error) })?;
                }
            }
        }
        let templates = Templates { environment };
        for language in Language::ALL {
            for kind in EmailKind::ALL {
                templates.render(kind, language, &EmailContext::sample(kind))?;
            }
        }
        Ok(templates)
    }

    /// Renders the subject, text and HTML of `kind` in `language`. The subject is made one
    /// line (line breaks become spaces) and must not be empty.
    pub fn render(
        &self,
        kind: EmailKind,
        language: Language,
        context: &EmailContext,
    ) -> Result<RenderedParts, TemplateError> {
        let context = Value::from(minijinja::value::Serde(context));
        let render = |part| {
            let name = template_name(language, kind, part);
            self.environment
                .get_template(&name)
                .and_then(|template| template.render(context.clone()))
                .map_err(|error| TemplateError::Render { name, detail: describe(&error) })
        };
        let subject = render(Part::Subject)?.split_whitespace().collect::<Vec<_>>().join(" ");
        let subject_name = template_name(language, kind, Part::Subject);
        if subject.is_empty() {
            return Err(TemplateError::Render { name: subject_name, detail: "the subject is empty".into() });
        }
        if subject.chars().count() > SUBJECT_CHARS_MAX {
            let detail = format!("the subject is longer than {SUBJECT_CHARS_MAX} characters");
            return Err(TemplateError::Render { name: subject_name, detail });
        }
        Ok(RenderedParts { subject, text: render(Part::Text)?, html: render(Part::Html)? })
    }
}

#[derive(Debug, Clone, Copy)]
enum Part {
    Subject,
    Text,
    Html,
}

impl Part {
    const ALL: [Part; 3] = [Part::Subject, Part::Text, Part::Html];

    fn suffix(self) -> &'static str {
        match self {
            Part::Subject => "subject.txt",
            Part::Text => "txt",
            Part::Html => "html",
        }
    }
}

/// `ja/order_confirmed.html`: also the path under the templates directory. The extension
/// is what turns HTML autoescaping on.
fn template_name(language: Language, kind: EmailKind, part: Part) -> String {
    format!("{}/{}.{}", language.as_str(), kind.as_str(), part.suffix())
}

fn read_template(path: &Path) -> Result<String, TemplateError> {
    let metadata =
        std::fs::metadata(path).map_err(|source| TemplateError::Read { path: path.to_path_buf(), source })?;
    if metadata.len() > TEMPLATE_BYTES_MAX {
        return Err(TemplateError::TooLarge { path: path.to_path_buf() });
    }
    std::fs::read_to_string(path).map_err(|source| TemplateError::Read { path: path.to_path_buf(), source })
}

/// minijinja's message with the line it points at, e.g. `syntax error: unexpected end of
/// input (line 3)`.
fn describe(error: &minijinja::Error) -> String {
    let kind = error.kind();
    let detail = error.detail().map_or_else(String::new, |detail| format!(": {detail}"));
    match error.line() {
        Some(line) => format!("{kind}{detail} (line {line})"),
        None => format!("{kind}{detail}"),
    }
}

impl EmailContext {
    /// A context with every field set, to render each template once at load.
    fn sample(kind: EmailKind) -> EmailContext {
        let ticket = TicketContext {
            id: "t0-0".into(),
            place: "S101ブロック B列 16番".into(),
            ticket_type: "Category 1".into(),
            page_url: "https://tickets.example.com/v1/tickets/t0-0/ticket.html".into(),
            qr_cid: if kind.carries_tickets() { "qr-0@hakken.invalid".into() } else { String::new() },
        };
        EmailContext {
            event_name: "Sample event".into(),
            starts_at: "2027年7月10日(土) 17:30 開演".into(),
            venue_name: "Sample venue".into(),
            holder_name: "Sample holder".into(),
            order_id: "o0-0".into(),
            tickets: if kind.carries_tickets() { vec![ticket] } else { Vec::new() },
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A templates directory holding `files` (name → source) and, for every other template,
    /// a copy of the shipped one.
    fn directory_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for language in Language::ALL {
            std::fs::create_dir_all(dir.path().join(language.as_str())).expect("language dir");
            for kind in EmailKind::ALL {
                for part in Part::ALL {
                    let name = template_name(language, kind, part);
                    let source = std::fs::read_to_string(shipped().join(&name)).expect("shipped template");
                    std::fs::write(dir.path().join(&name), source).expect("write");
                }
            }
        }
        for (name, source) in files {
            std::fs::write(dir.path().join(name), source).expect("write");
        }
        dir
    }

    pub(crate) fn shipped() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/notifications/templates")
    }

    fn load_error(files: &[(&str, &str)]) -> String {
        let dir = directory_with(files);
        match Templates::load(dir.path()) {
            Ok(_) => panic!("templates {files:?} loaded"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn the_shipped_templates_load() {
        Templates::load(&shipped()).expect("shipped templates");
    }

    #[test]
    fn bad_templates_fail_at_load_naming_file_and_line() {
        let error = load_error(&[("en/order_confirmed.html", "<p>\n{% for ticket in tickets %}\n")]);
        assert!(error.contains("en/order_confirmed.html") && error.contains("line"), "{error}");
        let error = load_error(&[("ja/order_refunded.txt", "{{ order_id }}\n{{ evnt_name }}\n")]);
        assert!(error.contains("ja/order_refunded.txt") && error.contains("undefined"), "{error}");
        assert!(error.contains("line 2"), "{error}");
        let error = load_error(&[("en/ticket_reissued.subject.txt", "  \n ")]);
        assert!(error.contains("subject is empty"), "{error}");
        let dir = directory_with(&[]);
        std::fs::remove_file(dir.path().join("en/order_confirmed.txt")).expect("remove");
        let error = Templates::load(dir.path()).expect_err("missing file").to_string();
        assert!(error.contains("en/order_confirmed.txt"), "{error}");
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let dir = directory_with(&[
            ("en/order_refunded.html", "<p>{{ holder_name }}</p>"),
            ("en/order_refunded.txt", "{{ holder_name }}\n"),
            ("en/order_refunded.subject.txt", "Refund\nfor {{ order_id }}\n"),
        ]);
        let templates = Templates::load(dir.path()).expect("templates");
        let context = EmailContext {
            holder_name: "<b>O'Brien & Co</b>".into(),
            ..EmailContext::sample(EmailKind::OrderRefunded)
        };
        let parts = templates.render(EmailKind::OrderRefunded, Language::En, &context).expect("render");
        assert_eq!(parts.html, "<p>&lt;b&gt;O&#x27;Brien &amp; Co&lt;&#x2f;b&gt;</p>");
        assert_eq!(parts.text, "<b>O'Brien & Co</b>\n");
        assert_eq!(parts.subject, "Refund for o0-0");
    }
}
