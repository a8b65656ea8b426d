//! The printable ticket page: self-contained HTML holding the QR code and the barcode.

use super::code128::{code128_svg, BARCODE_TEXT_LENGTH_MAX};
use super::qr::{qr_svg, CODE_LENGTH_MAX};
use super::{escape_html, RenderError};

/// What a printable ticket page shows. The caller formats every field (dates in the event's time zone, prices
/// with currency); this module only escapes and lays them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketPage {
    pub event_name: String,
    pub starts_at: String,
    pub venue: String,
    /// "Section B · Row 4 · Seat 17", or "General admission — SECTION" for unseated sections.
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
    let qr_block = match qr_svg(&page.code) {
        Ok(svg) => svg,
        Err(error) => fallback_block("QR code", &error, "Ticket code", &page.code, CODE_LENGTH_MAX),
    };
    let barcode_block = match code128_svg(&page.barcode_text) {
        Ok(svg) => svg,
        Err(error) => fallback_block("Barcode", &error, "Barcode text", &page.barcode_text, BARCODE_TEXT_LENGTH_MAX),
    };
    format!(
        concat!(
            "<!DOCTYPE html>\n",
            "<html lang=\"en\">\n",
            "<head>\n",
            "<meta charset=\"utf-8\"/>\n",
            // Defence in depth: even if escaping were bypassed, the page can load nothing and run nothing.
            "<meta http-equiv=\"Content-Security-Policy\" ",
            "content=\"default-src 'none'; style-src 'unsafe-inline'\"/>\n",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n",
            "<title>Ticket {ticket_id} — {event_name}</title>\n",
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
            "<div><dt>Place</dt><dd class=\"place\">{place}</dd></div>\n",
            "<div><dt>Ticket type</dt><dd class=\"ticket-type\">{ticket_type}</dd></div>\n",
            "<div><dt>Price</dt><dd class=\"price\">{price}</dd></div>\n",
            "<div><dt>Holder</dt><dd class=\"holder\">{holder}</dd></div>\n",
            "<div><dt>Ticket</dt><dd class=\"ticket-id\">{ticket_id}</dd></div>\n",
            "<div><dt>State</dt><dd class=\"state\">{state}</dd></div>\n",
            "</dl>\n",
            "<div class=\"qr\">{qr_block}</div>\n",
            "</section>\n",
            "<div class=\"barcode\">{barcode_block}</div>\n",
            "<p class=\"note\">{note}</p>\n",
            "</main>\n",
            "</body>\n",
            "</html>\n",
        ),
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
        note = escape_html(VALIDITY_NOTE),
        barcode_block = barcode_block,
    )
}

/// Printed on every ticket: only the latest version of a ticket gets in, so an old printout is worthless.
pub(crate) const VALIDITY_NOTE: &str =
    "Valid only in its latest version; a reissued ticket's old code is refused at the gate.";

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
/// gate agent can still type it in.
pub(super) fn fallback_block(
    what: &str,
    error: &RenderError,
    text_label: &str,
    text: &str,
    text_chars_max: usize,
) -> String {
    let mut block = format!("<p class=\"fallback\">{} unavailable: {}.", what, escape_html(&error.to_string()));
    if !text.is_empty() {
        let shown_text: String = text.chars().take(text_chars_max).collect();
        block.push_str(&format!("<br/>{}: <code>{}</code>", text_label, escape_html(&shown_text)));
    }
    block.push_str("</p>");
    block
}
