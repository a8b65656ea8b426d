//! The printable ticket page: self-contained HTML holding the QR code and the barcode, its
//! labels in the event's language.

use hakken_notify::Language;

use super::code128::{code128_svg, BARCODE_TEXT_LENGTH_MAX};
use super::qr::{qr_svg, CODE_LENGTH_MAX};
use super::{escape_html, RenderError};

/// What a printable ticket page shows. The caller formats every field in the page's
/// `language` (dates in the venue's time zone, places, prices with currency); this module
/// only adds the labels, escapes and lays them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketPage {
    /// The event's language: the page's labels and its `lang`.
    pub language: Language,
    pub event_name: String,
    /// e.g. `Saturday 10 July 2027, 19:30 (CEST)` (`hakken_notify::format_starts_at`).
    pub starts_at: String,
    pub venue: String,
    /// e.g. `Section Lower Tier 101, Row D, Seat 1` (`hakken_notify::format_place`).
    pub place: String,
    pub ticket_type: String,
    pub price: String,
    pub holder: String,
    pub ticket_id: String,
    pub state: String,
    /// Encoded in the QR symbol; the gate scans this.
    pub code: String,
    /// Encoded in the Code 128 barcode: the printed barcode text, `ticket.version.tag`
    /// (its format is `hakken_engine::tickets::barcode`'s).
    pub barcode_text: String,
}

/// A self-contained printable ticket page: no scripts, no external resources, every field HTML-escaped. A QR code or
/// barcode that cannot be made is replaced by a text fallback, so the page itself never fails.
pub fn ticket_html(page: &TicketPage) -> String {
    let words = Words::of(page.language);
    let qr_block = match qr_svg(&page.code) {
        Ok(svg) => svg,
        Err(error) => fallback_block(words.qr_unavailable, &error, words.code_text, &page.code, CODE_LENGTH_MAX),
    };
    let barcode_block = match code128_svg(&page.barcode_text) {
        Ok(svg) => svg,
        Err(error) => fallback_block(
            words.barcode_unavailable,
            &error,
            words.barcode_text,
            &page.barcode_text,
            BARCODE_TEXT_LENGTH_MAX,
        ),
    };
    format!(
        concat!(
            "<!DOCTYPE html>\n",
            "<html lang=\"{lang}\">\n",
            "<head>\n",
            "<meta charset=\"utf-8\"/>\n",
            // Defence in depth: even if escaping were bypassed, the page can load nothing and run nothing.
            "<meta http-equiv=\"Content-Security-Policy\" ",
            "content=\"default-src 'none'; style-src 'unsafe-inline'\"/>\n",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n",
            "<title>{ticket_label} {ticket_id} — {event_name}</title>\n",
            "<style>\n{style}</style>\n",
            "</head>\n",
            "<body>\n",
            "<main class=\"ticket\">\n",
            "<header>\n",
            "<h1 class=\"event-name\">{event_name}</h1>\n",
            "<p class=\"starts-at\">{starts_at}</p>\n",
            "<p class=\"venue\">{venue}</p>\n",
            "</header>\n",
            "<section class=\"details-and-qr\">\n",
            "<dl class=\"details\">\n",
            "<div><dt>{place_label}</dt><dd class=\"place\">{place}</dd></div>\n",
            "<div><dt>{ticket_type_label}</dt><dd class=\"ticket-type\">{ticket_type}</dd></div>\n",
            "<div><dt>{price_label}</dt><dd class=\"price\">{price}</dd></div>\n",
            "<div><dt>{holder_label}</dt><dd class=\"holder\">{holder}</dd></div>\n",
            "<div><dt>{ticket_label}</dt><dd class=\"ticket-id\">{ticket_id}</dd></div>\n",
            "<div><dt>{state_label}</dt><dd class=\"state\">{state}</dd></div>\n",
            "</dl>\n",
            "<div class=\"qr\">{qr_block}</div>\n",
            "</section>\n",
            "<div class=\"barcode\">{barcode_block}</div>\n",
            "<p class=\"note\">{note}</p>\n",
            "</main>\n",
            "</body>\n",
            "</html>\n",
        ),
        lang = page.language.as_str(),
        ticket_label = words.ticket,
        place_label = words.place,
        ticket_type_label = words.ticket_type,
        price_label = words.price,
        holder_label = words.holder,
        state_label = words.state,
        style = TICKET_PAGE_STYLE,
        event_name = escape_html(&page.event_name),
        starts_at = escape_html(&page.starts_at),
        venue = escape_html(&page.venue),
        place = escape_html(&page.place),
        ticket_type = escape_html(&page.ticket_type),
        price = escape_html(&page.price),
        holder = escape_html(&page.holder),
        ticket_id = escape_html(&page.ticket_id),
        state = escape_html(&page.state),
        qr_block = qr_block,
        note = escape_html(words.validity_note),
        barcode_block = barcode_block,
    )
}

/// The page's own words in one language (plain text: no `<` or `&`, they are not escaped).
pub(crate) struct Words {
    pub(crate) ticket: &'static str,
    pub(crate) place: &'static str,
    pub(crate) ticket_type: &'static str,
    pub(crate) price: &'static str,
    pub(crate) holder: &'static str,
    pub(crate) state: &'static str,
    /// Printed on every ticket: only the latest version of a ticket gets in, so an old
    /// printout is worthless.
    pub(crate) validity_note: &'static str,
    pub(crate) qr_unavailable: &'static str,
    pub(crate) code_text: &'static str,
    pub(crate) barcode_unavailable: &'static str,
    pub(crate) barcode_text: &'static str,
}

impl Words {
    pub(crate) fn of(language: Language) -> &'static Words {
        match language {
            Language::En => &ENGLISH,
            Language::Ja => &JAPANESE,
        }
    }
}

const ENGLISH: Words = Words {
    ticket: "Ticket",
    place: "Place",
    ticket_type: "Ticket type",
    price: "Price",
    holder: "Holder",
    state: "State",
    validity_note: "Valid only in its latest version; a reissued ticket's old code is refused at the gate.",
    qr_unavailable: "QR code unavailable",
    code_text: "Ticket code",
    barcode_unavailable: "Barcode unavailable",
    barcode_text: "Barcode text",
};

const JAPANESE: Words = Words {
    ticket: "チケット",
    place: "座席",
    ticket_type: "券種",
    price: "料金",
    holder: "名義",
    state: "状態",
    validity_note: "最新版のチケットのみ有効です。再発行されたチケットの旧コードでは入場できません。",
    qr_unavailable: "QRコードを表示できません",
    code_text: "チケットコード",
    barcode_unavailable: "バーコードを表示できません",
    barcode_text: "バーコード番号",
};

/// Print-first layout: fits A4 and US Letter (content at most 180 mm wide), black on white, one ticket per page.
/// It must stay free of `&` so the page remains well-formed XML (the tests parse it).
const TICKET_PAGE_STYLE: &str = "\
@page { size: auto; margin: 12mm; }
* { box-sizing: border-box; }
body { margin: 0; padding: 12mm 0; background: #fff; color: #000; font: 11pt/1.4 system-ui, sans-serif; }
.ticket { max-width: 180mm; margin: 0 auto; padding: 8mm; border: 0.4mm solid #000; border-radius: 3mm; }
header { border-bottom: 0.3mm solid #000; padding-bottom: 4mm; margin-bottom: 5mm; }
h1 { margin: 0 0 2mm; font-size: 20pt; line-height: 1.2; overflow-wrap: anywhere; }
header p { margin: 0; font-size: 12pt; overflow-wrap: anywhere; }
.details-and-qr { display: flex; gap: 8mm; align-items: flex-start; justify-content: space-between; }
.details { flex: 1 1 auto; margin: 0; min-width: 0; }
.details div { display: flex; gap: 3mm; padding: 1.2mm 0; border-bottom: 0.2mm dotted #666; }
.details dt { flex: 0 0 28mm; font-weight: 600; }
.details dd { margin: 0; overflow-wrap: anywhere; }
.qr { flex: 0 0 55mm; }
.qr svg { display: block; width: 55mm; height: 55mm; }
.barcode { margin-top: 6mm; text-align: center; }
.barcode svg { max-width: 100%; height: auto; }
.fallback { padding: 3mm; border: 0.3mm dashed #000; font-size: 9pt; overflow-wrap: anywhere; }
.note { margin: 5mm 0 0; font-size: 9pt; }
@media print {
  body { padding: 0; }
  .ticket { break-inside: avoid; }
}
";

/// Shown instead of a QR code or barcode that cannot be made: the reason, and the encoded text itself (bounded) so a
/// gate agent can still type it in. (The reason is a `RenderError`'s, in English.)
pub(super) fn fallback_block(
    unavailable: &str,
    error: &RenderError,
    text_label: &str,
    text: &str,
    text_chars_max: usize,
) -> String {
    let mut block = format!("<p class=\"fallback\">{}: {}.", unavailable, escape_html(&error.to_string()));
    if !text.is_empty() {
        let shown_text: String = text.chars().take(text_chars_max).collect();
        block.push_str(&format!("<br/>{}: <code>{}</code>", text_label, escape_html(&shown_text)));
    }
    block.push_str("</p>");
    block
}
