//! Renders what a ticket holder shows at the gate: the ticket's code as a QR symbol (SVG or PNG), the ticket id
//! as a Code 128 barcode (SVG) for printed tickets, and a printable HTML page holding both.
//!
//! Everything here is a pure function of its input: no clock, no randomness, no I/O, so the same input gives the
//! same bytes (responses can be cached and compared). Every input is bounded and checked before any work is done;
//! a bad input is a `RenderError`, never a panic.
//!
//! The QR matrix comes from the `qrcode` crate; drawing is ours. `QrModules` is the single matrix that both the
//! SVG and the PNG are drawn from, so the two cannot disagree. Code 128 (code set B) is implemented here: it is one
//! table and a checksum.

use qrcode::{Color, EcLevel, QrCode};

/// Longest ticket code we render. Codes are ~130 characters today; 512 leaves room for longer signatures while the
/// QR symbol (version 19 at level M for 512 bytes) still scans from a phone screen or a print.
pub const CODE_LENGTH_MAX: usize = 512;

/// Light modules around the QR symbol: ISO/IEC 18004 asks for at least 4, and scanners need them to find the symbol.
pub const QR_QUIET_ZONE_MODULES: usize = 4;

/// Pixels per module in the QR SVG's `width`/`height`. The viewBox is in modules, so CSS can scale it freely.
pub const QR_SVG_MODULE_PX: usize = 8;

/// Smallest PNG module size (1 pixel per module).
pub const QR_PNG_MODULE_PX_MIN: u32 = 1;

/// Largest PNG module size. A 512-character code at 32 px per module is a 3,104 px square: 1.2 MB of 1-bit rows in
/// memory before compression. Larger images only cost memory; printers scale the SVG instead.
pub const QR_PNG_MODULE_PX_MAX: u32 = 32;

/// Longest text we put in a Code 128 barcode. Ticket id and version are ~10–40 characters; at 64 the symbol is
/// 759 modules wide, which still gives ~0.2 mm modules across the 164 mm of a printed A4 or Letter ticket.
pub const BARCODE_TEXT_LENGTH_MAX: usize = 64;

/// Light modules on each side of the Code 128 symbol (ISO/IEC 15417 asks for at least 10).
pub const CODE128_QUIET_ZONE_MODULES: usize = 10;

/// Pixels per module in the barcode SVG's `width`/`height`; as for the QR, the viewBox is in modules.
const CODE128_SVG_MODULE_PX: usize = 2;

/// Bar height in modules: 10 mm at 0.2 mm per module, tall enough for a handheld scanner's tilted sweep.
const CODE128_BAR_HEIGHT_MODULES: usize = 50;

/// Font size of the human-readable text under the bars.
const CODE128_FONT_SIZE_MODULES: usize = 10;

/// Room under the bars for the human-readable text: the font size plus gaps above and below.
const CODE128_TEXT_BAND_MODULES: usize = CODE128_FONT_SIZE_MODULES + 4;

/// Symbol value of "Start code B": data symbols that follow are printable ASCII minus 32.
const CODE128_START_B: u8 = 104;

/// Code 128's check symbol is the weighted sum of all symbols modulo this.
const CODE128_CHECKSUM_MODULUS: u32 = 103;

/// Bar and space widths in modules, bar first, of Code 128 symbol values 0..=105 (ISO/IEC 15417, table 1). Each
/// symbol is 3 bars and 3 spaces, 11 modules wide. Written as digits so it can be compared with published tables.
const CODE128_SYMBOL_WIDTHS: [[u8; 6]; 106] = [
    *b"212222", *b"222122", *b"222221", *b"121223", *b"121322", *b"131222", *b"122213", *b"122312", // 0..=7
    *b"132212", *b"221213", *b"221312", *b"231212", *b"112232", *b"122132", *b"122231", *b"113222", // 8..=15
    *b"123122", *b"123221", *b"223211", *b"221132", *b"221231", *b"213212", *b"223112", *b"312131", // 16..=23
    *b"311222", *b"321122", *b"321221", *b"312212", *b"322112", *b"322211", *b"212123", *b"212321", // 24..=31
    *b"232121", *b"111323", *b"131123", *b"131321", *b"112313", *b"132113", *b"132311", *b"211313", // 32..=39
    *b"231113", *b"231311", *b"112133", *b"112331", *b"132131", *b"113123", *b"113321", *b"133121", // 40..=47
    *b"313121", *b"211331", *b"231131", *b"213113", *b"213311", *b"213131", *b"311123", *b"311321", // 48..=55
    *b"331121", *b"312113", *b"312311", *b"332111", *b"314111", *b"221411", *b"431111", *b"111224", // 56..=63
    *b"111422", *b"121124", *b"121421", *b"141122", *b"141221", *b"112214", *b"112412", *b"122114", // 64..=71
    *b"122411", *b"142112", *b"142211", *b"241211", *b"221114", *b"413111", *b"241112", *b"134111", // 72..=79
    *b"111242", *b"121142", *b"121241", *b"114212", *b"124112", *b"124211", *b"411212", *b"421112", // 80..=87
    *b"421211", *b"212141", *b"214121", *b"412121", *b"111143", *b"111341", *b"131141", *b"114113", // 88..=95
    *b"114311", *b"411113", *b"411311", *b"113141", *b"114131", *b"311141", *b"411131", *b"211412", // 96..=103
    *b"211214", *b"211232", // 104 (Start B), 105 (Start C)
];

/// The stop pattern: 4 bars and 3 spaces, 13 modules (the stop symbol plus its 2-module termination bar).
const CODE128_STOP_WIDTHS: [u8; 7] = *b"2331112";

/// Why a QR code, PNG or barcode could not be made. The input errors (all but `QrEncoding` and `PngEncoding`, which
/// are server faults) have messages meant for API clients.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the text to encode is empty")]
    Empty,
    #[error("the text to encode is {length} bytes long; at most {length_max} ASCII characters are allowed")]
    TooLong { length: usize, length_max: usize },
    #[error("character {character:?} at position {position} is not printable ASCII (space to '~')")]
    InvalidCharacter { character: char, position: usize },
    #[error("module size {module_px} px is outside {QR_PNG_MODULE_PX_MIN}..={QR_PNG_MODULE_PX_MAX}")]
    ModuleSizeOutOfRange { module_px: u32 },
    /// Not expected for valid input (512 bytes fit easily at level M); kept so the encoder never has to panic.
    #[error("the QR encoder refused the text: {0}")]
    QrEncoding(#[source] qrcode::types::QrError),
    #[error("PNG encoding failed: {0}")]
    PngEncoding(#[from] png::EncodingError),
}

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
    /// Encoded in the Code 128 barcode (ticket id and version, e.g. `t3-1f-0.v2`).
    pub barcode_text: String,
}

/// The ticket code as a QR symbol (level M, 4-module quiet zone) in SVG: one `<path>` holds every dark module, the
/// viewBox is in modules and `width`/`height` use `QR_SVG_MODULE_PX` pixels per module.
pub fn qr_svg(code: &str) -> Result<String, RenderError> {
    let modules = qr_modules(code)?;
    Ok(qr_svg_from_modules(&modules))
}

/// The ticket code as a QR symbol in a 1-bit grayscale PNG, each module `module_px` × `module_px` pixels.
pub fn qr_png(code: &str, module_px: u32) -> Result<Vec<u8>, RenderError> {
    if !(QR_PNG_MODULE_PX_MIN..=QR_PNG_MODULE_PX_MAX).contains(&module_px) {
        return Err(RenderError::ModuleSizeOutOfRange { module_px });
    }
    let modules = qr_modules(code)?;
    qr_png_from_modules(&modules, module_px)
}

/// `text` as a Code 128 barcode (code set B) in SVG: one `<path>` holds the bars, the text is printed under them.
pub fn code128_svg(text: &str) -> Result<String, RenderError> {
    let symbols = code128_symbols(text)?;
    let element_widths = code128_element_widths(&symbols);
    Ok(code128_svg_from_widths(text, &element_widths))
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
pub const VALIDITY_NOTE: &str =
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

/// The QR symbol's modules, quiet zone included, row by row. `true` is a dark module.
#[derive(Debug)]
struct QrModules {
    /// Width and height in modules (the symbol plus two quiet zones).
    size: usize,
    dark: Vec<bool>,
}

impl QrModules {
    fn rows(&self) -> impl Iterator<Item = &[bool]> {
        self.dark.chunks_exact(self.size)
    }
}

/// A horizontal run of dark modules (QR) or one bar (Code 128), in modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    start: usize,
    length: usize,
}

fn qr_modules(code: &str) -> Result<QrModules, RenderError> {
    check_printable_ascii(code, CODE_LENGTH_MAX)?;
    let symbol = QrCode::with_error_correction_level(code.as_bytes(), EcLevel::M).map_err(RenderError::QrEncoding)?;
    let symbol_size = symbol.width();
    let size = symbol_size + 2 * QR_QUIET_ZONE_MODULES;
    let mut dark = vec![false; size * size];
    for (index, color) in symbol.into_colors().into_iter().enumerate() {
        let x = QR_QUIET_ZONE_MODULES + index % symbol_size;
        let y = QR_QUIET_ZONE_MODULES + index / symbol_size;
        dark[y * size + x] = color == Color::Dark;
    }
    Ok(QrModules { size, dark })
}

fn dark_runs(row: &[bool]) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut run_start = None;
    for (x, &is_dark) in row.iter().enumerate() {
        match (run_start, is_dark) {
            (None, true) => run_start = Some(x),
            (Some(start), false) => {
                runs.push(Run { start, length: x - start });
                run_start = None;
            }
            _ => {}
        }
    }
    if let Some(start) = run_start {
        runs.push(Run { start, length: row.len() - start });
    }
    runs
}

fn qr_svg_from_modules(modules: &QrModules) -> String {
    // One rectangle per horizontal run of dark modules keeps the path short (~4× fewer segments than per module).
    let mut path = String::new();
    for (y, row) in modules.rows().enumerate() {
        for run in dark_runs(row) {
            path.push_str(&format!("M{} {}h{}v1h-{}z", run.start, y, run.length, run.length));
        }
    }
    format!(
        concat!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" width=\"{size_px}\" ",
            "height=\"{size_px}\" shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"Ticket QR code\">",
            // The light background is part of the symbol: without it a dark page would swallow the quiet zone.
            "<rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/>",
            "<path fill=\"#000\" d=\"{path}\"/>",
            "</svg>",
        ),
        size = modules.size,
        size_px = modules.size * QR_SVG_MODULE_PX,
        path = path,
    )
}

fn qr_png_from_modules(modules: &QrModules, module_px: u32) -> Result<Vec<u8>, RenderError> {
    // 1 bit per pixel: the image is pure black and white, and 1-bit rows take 8× less memory than 8-bit ones.
    debug_assert!((QR_PNG_MODULE_PX_MIN..=QR_PNG_MODULE_PX_MAX).contains(&module_px), "checked by qr_png");
    let module_px = module_px as usize;
    let size_px = modules.size * module_px;
    let row_bytes = size_px.div_ceil(8);
    let mut pixels = Vec::with_capacity(row_bytes * size_px);
    for row in modules.rows() {
        // In grayscale 0 is black, so light pixels are the set bits; bits are packed most significant first.
        let mut packed_row = vec![0u8; row_bytes];
        for x_px in 0..size_px {
            if !row[x_px / module_px] {
                packed_row[x_px / 8] |= 0x80 >> (x_px % 8);
            }
        }
        for _ in 0..module_px {
            pixels.extend_from_slice(&packed_row);
        }
    }
    // At most 185 modules (QR version 40) × 32 px, so it fits a u32 with room to spare.
    let size_px = size_px as u32;
    let mut png_bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut png_bytes, size_px, size_px);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(png_bytes)
}

/// The symbol values to draw: start B, one symbol per character, then the check symbol (the stop pattern is fixed
/// and drawn separately). Code set B covers printable ASCII; set C for digit pairs would only make long digit runs
/// shorter, and ticket ids are mostly letters.
fn code128_symbols(text: &str) -> Result<Vec<u8>, RenderError> {
    check_printable_ascii(text, BARCODE_TEXT_LENGTH_MAX)?;
    let mut symbols = Vec::with_capacity(text.len() + 2);
    symbols.push(CODE128_START_B);
    symbols.extend(text.bytes().map(|byte| byte - b' '));
    symbols.push(code128_checksum(&symbols));
    Ok(symbols)
}

/// Weighted sum modulo 103 of the start symbol (weight 1) and the data symbols (weights 1, 2, 3, ...).
fn code128_checksum(start_and_data: &[u8]) -> u8 {
    let weighted_sum: u32 =
        start_and_data.iter().enumerate().map(|(position, &value)| u32::from(value) * position.max(1) as u32).sum();
    // The remainder is below 103, so it fits a u8 and is a valid symbol value.
    (weighted_sum % CODE128_CHECKSUM_MODULUS) as u8
}

/// Alternating bar and space widths in modules, bar first, for the symbols followed by the stop pattern.
fn code128_element_widths(symbols: &[u8]) -> Vec<u8> {
    let mut widths = Vec::with_capacity(symbols.len() * 6 + CODE128_STOP_WIDTHS.len());
    for &symbol in symbols {
        widths.extend(CODE128_SYMBOL_WIDTHS[usize::from(symbol)].iter().map(|digit| digit - b'0'));
    }
    widths.extend(CODE128_STOP_WIDTHS.iter().map(|digit| digit - b'0'));
    widths
}

/// The bars (even-numbered elements), placed after the left quiet zone.
fn code128_bars(element_widths: &[u8]) -> Vec<Run> {
    let mut bars = Vec::with_capacity(element_widths.len() / 2 + 1);
    let mut x = CODE128_QUIET_ZONE_MODULES;
    for (index, &width) in element_widths.iter().enumerate() {
        let width = usize::from(width);
        if index % 2 == 0 {
            bars.push(Run { start: x, length: width });
        }
        x += width;
    }
    bars
}

fn code128_svg_from_widths(text: &str, element_widths: &[u8]) -> String {
    let symbol_modules: usize = element_widths.iter().map(|&width| usize::from(width)).sum();
    let width = symbol_modules + 2 * CODE128_QUIET_ZONE_MODULES;
    let height = CODE128_BAR_HEIGHT_MODULES + CODE128_TEXT_BAND_MODULES;
    let mut path = String::new();
    for bar in code128_bars(element_widths) {
        path.push_str(&format!("M{} 0h{}v{}h-{}z", bar.start, bar.length, CODE128_BAR_HEIGHT_MODULES, bar.length));
    }
    let text = escape_html(text);
    format!(
        concat!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{width_px}\" ",
            "height=\"{height_px}\" shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"Barcode {text}\">",
            "<rect width=\"{width}\" height=\"{height}\" fill=\"#fff\"/>",
            "<path fill=\"#000\" d=\"{path}\"/>",
            "<text x=\"50%\" y=\"{text_baseline}\" font-family=\"monospace\" font-size=\"{font_size}\" ",
            "text-anchor=\"middle\" fill=\"#000\">{text}</text>",
            "</svg>",
        ),
        width = width,
        height = height,
        width_px = width * CODE128_SVG_MODULE_PX,
        height_px = height * CODE128_SVG_MODULE_PX,
        text = text,
        path = path,
        font_size = CODE128_FONT_SIZE_MODULES,
        // One module of gap between the bars and the top of the digits (the baseline is a font size lower).
        text_baseline = CODE128_BAR_HEIGHT_MODULES + 1 + CODE128_FONT_SIZE_MODULES,
    )
}

/// Shown instead of a QR code or barcode that cannot be made: the reason, and the encoded text itself (bounded) so a
/// gate agent can still type it in.
fn fallback_block(what: &str, error: &RenderError, text_label: &str, text: &str, text_chars_max: usize) -> String {
    let mut block = format!("<p class=\"fallback\">{} unavailable: {}.", what, escape_html(&error.to_string()));
    if !text.is_empty() {
        let shown_text: String = text.chars().take(text_chars_max).collect();
        block.push_str(&format!("<br/>{}: <code>{}</code>", text_label, escape_html(&shown_text)));
    }
    block.push_str("</p>");
    block
}

/// Checks the one alphabet both symbologies accept here: 1..=`length_max` printable ASCII characters.
fn check_printable_ascii(text: &str, length_max: usize) -> Result<(), RenderError> {
    if text.is_empty() {
        return Err(RenderError::Empty);
    }
    // Bytes, not chars: O(1), and for the ASCII we accept the two are the same.
    if text.len() > length_max {
        return Err(RenderError::TooLong { length: text.len(), length_max });
    }
    // Every character before the first bad one is one byte, so the byte offset is also the character position.
    match text.char_indices().find(|&(_, character)| !matches!(character, ' '..='~')) {
        Some((position, character)) => Err(RenderError::InvalidCharacter { character, position }),
        None => Ok(()),
    }
}

/// Escapes text for HTML and XML content and attribute values alike.
fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(character),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A base64url-ish code like the ones the engine issues, of exactly `length` characters.
    fn sample_code(length: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut code = String::from("HK1.");
        let mut state: u32 = 7;
        while code.len() < length {
            // A fixed linear congruential sequence: varied characters, same code on every run.
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            code.push(char::from(ALPHABET[(state >> 16) as usize % ALPHABET.len()]));
        }
        code.truncate(length);
        code
    }

    fn codes_to_check() -> Vec<String> {
        vec![
            "HK1.A".to_string(),
            // Mixed numeric, alphanumeric and byte segments, so every QR mode the encoder picks is read back.
            "HK1.12345678901234567890ABCDEFGHIJKLMNOP-abc_def 0987654321".to_string(),
            sample_code(130),
            sample_code(CODE_LENGTH_MAX),
        ]
    }

    fn sample_page() -> TicketPage {
        TicketPage {
            event_name: "Hakken Demo Night 2027".to_string(),
            starts_at: "Friday 12 March 2027, 19:30 (doors 18:45)".to_string(),
            venue: "Grand Hall, 1 Example Street, Springfield".to_string(),
            place: "Section B · Row 4 · Seat 17".to_string(),
            ticket_type: "Adult".to_string(),
            price: "EUR 49.00".to_string(),
            holder: "Ada Lovelace".to_string(),
            ticket_id: "t3-1f-0".to_string(),
            state: "valid".to_string(),
            code: sample_code(130),
            barcode_text: "t3-1f-0.v2".to_string(),
        }
    }

    /// Reads every QR symbol rqrr finds in a grayscale image (0 is black).
    fn decode_qr(width: usize, height: usize, luma: &[u8]) -> Vec<String> {
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| luma[y * width + x]);
        image.detect_grids().iter().map(|grid| grid.decode().expect("a detected grid decodes").1).collect()
    }

    /// Decodes a PNG to 8-bit grayscale (expanding our 1-bit rows with png's own decoder, not ours).
    fn decode_png(png_bytes: &[u8]) -> (usize, usize, Vec<u8>) {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().expect("PNG header");
        let mut luma = vec![0; reader.output_buffer_size().expect("buffer size")];
        let frame = reader.next_frame(&mut luma).expect("PNG frame");
        assert_eq!(frame.color_type, png::ColorType::Grayscale);
        assert_eq!(frame.bit_depth, png::BitDepth::Eight);
        luma.truncate(frame.buffer_size());
        (frame.width as usize, frame.height as usize, luma)
    }

    /// The dark modules drawn by a QR SVG, read back from its viewBox and path (the format `qr_svg` writes).
    fn modules_from_qr_svg(svg: &str) -> QrModules {
        let document = roxmltree::Document::parse(svg).expect("QR SVG is well-formed XML");
        let root = document.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(root.attribute("shape-rendering"), Some("crispEdges"));
        let view_box: Vec<usize> = root.attribute("viewBox").unwrap().split(' ').map(|n| n.parse().unwrap()).collect();
        assert_eq!(view_box[..2], [0, 0]);
        assert_eq!(view_box[2], view_box[3], "square");
        let size = view_box[2];
        assert_eq!(root.attribute("width"), Some((size * QR_SVG_MODULE_PX).to_string().as_str()));
        assert_eq!(root.attribute("height"), Some((size * QR_SVG_MODULE_PX).to_string().as_str()));
        let paths: Vec<_> = root.descendants().filter(|node| node.has_tag_name("path")).collect();
        assert_eq!(paths.len(), 1, "one path for all dark modules");

        let mut dark = vec![false; size * size];
        for segment in paths[0].attribute("d").unwrap().split('M').skip(1) {
            // "x yhLv1h-Lz": a run of L dark modules starting at (x, y).
            let body = segment.strip_suffix('z').expect("segment closes");
            let parts: Vec<&str> = body.split('h').collect();
            assert_eq!(parts.len(), 3, "segment {segment}");
            let (x, y) = parts[0].split_once(' ').unwrap();
            let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
            let length: usize = parts[1].strip_suffix("v1").unwrap().parse().unwrap();
            assert_eq!(parts[2], format!("-{length}"));
            for module_x in x..x + length {
                assert!(!dark[y * size + module_x], "module ({module_x}, {y}) drawn twice");
                dark[y * size + module_x] = true;
            }
        }
        QrModules { size, dark }
    }

    /// A module matrix as a grayscale image, `module_px` pixels per module.
    fn rasterize(modules: &QrModules, module_px: usize) -> (usize, Vec<u8>) {
        let size_px = modules.size * module_px;
        let mut luma = Vec::with_capacity(size_px * size_px);
        for y_px in 0..size_px {
            for x_px in 0..size_px {
                let is_dark = modules.dark[(y_px / module_px) * modules.size + x_px / module_px];
                luma.push(if is_dark { 0 } else { 255 });
            }
        }
        (size_px, luma)
    }

    #[test]
    fn qr_png_decodes_back_to_the_code() {
        for code in codes_to_check() {
            for module_px in [1, 3, 8] {
                let png_bytes = qr_png(&code, module_px).unwrap();
                let (width, height, luma) = decode_png(&png_bytes);
                let modules = qr_modules(&code).unwrap();
                assert_eq!((width, height), (modules.size * module_px as usize, modules.size * module_px as usize));
                assert_eq!(decode_qr(width, height, &luma), vec![code.clone()], "module_px {module_px}");
            }
        }
    }

    #[test]
    fn qr_png_pixels_match_the_modules() {
        let code = sample_code(130);
        let modules = qr_modules(&code).unwrap();
        let (width, _, luma) = decode_png(&qr_png(&code, 3).unwrap());
        assert_eq!((width, luma), rasterize(&modules, 3));
    }

    #[test]
    fn qr_svg_draws_exactly_the_dark_modules_and_decodes() {
        for code in codes_to_check() {
            let svg = qr_svg(&code).unwrap();
            let drawn = modules_from_qr_svg(&svg);
            let expected = qr_modules(&code).unwrap();
            assert_eq!(drawn.size, expected.size);
            assert!(drawn.dark == expected.dark, "SVG path differs from the module matrix for {code}");
            let (size_px, luma) = rasterize(&drawn, 4);
            assert_eq!(decode_qr(size_px, size_px, &luma), vec![code.clone()]);
        }
    }

    #[test]
    fn qr_has_a_light_quiet_zone_of_four_modules() {
        let modules = qr_modules("HK1.A").unwrap();
        for (y, row) in modules.rows().enumerate() {
            for (x, &is_dark) in row.iter().enumerate() {
                let in_quiet_zone =
                    x.min(y) < QR_QUIET_ZONE_MODULES || x.max(y) >= modules.size - QR_QUIET_ZONE_MODULES;
                assert!(!(in_quiet_zone && is_dark), "dark module ({x}, {y}) in the quiet zone");
            }
        }
        // The finder pattern's corner starts right after the quiet zone.
        assert!(modules.dark[QR_QUIET_ZONE_MODULES * modules.size + QR_QUIET_ZONE_MODULES]);
    }

    #[test]
    fn qr_bounds() {
        let longest = sample_code(CODE_LENGTH_MAX);
        assert!(qr_svg(&longest).is_ok());
        assert!(qr_png(&longest, QR_PNG_MODULE_PX_MAX).is_ok());
        let too_long = sample_code(CODE_LENGTH_MAX + 1);
        assert!(matches!(qr_svg(&too_long), Err(RenderError::TooLong { length: 513, length_max: 512 })));
        assert!(matches!(qr_png(&too_long, 4), Err(RenderError::TooLong { .. })));
        assert!(matches!(qr_svg(""), Err(RenderError::Empty)));
        assert!(matches!(qr_svg("HK1.é"), Err(RenderError::InvalidCharacter { character: 'é', position: 4 })));
        assert!(matches!(qr_svg("HK1.\n"), Err(RenderError::InvalidCharacter { character: '\n', .. })));
        for module_px in [0, QR_PNG_MODULE_PX_MAX + 1, u32::MAX] {
            assert!(matches!(qr_png("HK1.A", module_px), Err(RenderError::ModuleSizeOutOfRange { .. })));
        }
        assert!(qr_png("HK1.A", QR_PNG_MODULE_PX_MIN).is_ok());
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        let check = |error: RenderError, expected: &str| assert_eq!(error.to_string(), expected);
        check(
            qr_svg(&sample_code(600)).unwrap_err(),
            "the text to encode is 600 bytes long; at most 512 ASCII characters are allowed",
        );
        check(
            code128_svg("a\u{7f}").unwrap_err(),
            "character '\\u{7f}' at position 1 is not printable ASCII (space to '~')",
        );
        check(qr_png("x", 33).unwrap_err(), "module size 33 px is outside 1..=32");
    }

    /// Decodes our own barcode by the symbol table, to check the drawing against the symbols it was drawn from.
    fn read_code128_svg(svg: &str) -> (String, Vec<u8>) {
        let document = roxmltree::Document::parse(svg).expect("barcode SVG is well-formed XML");
        let root = document.root_element();
        let view_box: Vec<usize> = root.attribute("viewBox").unwrap().split(' ').map(|n| n.parse().unwrap()).collect();
        let paths: Vec<_> = root.descendants().filter(|node| node.has_tag_name("path")).collect();
        assert_eq!(paths.len(), 1, "one path for all bars");
        let mut is_bar = vec![false; view_box[2]];
        for segment in paths[0].attribute("d").unwrap().split('M').skip(1) {
            // "x 0hWvHh-Wz": a bar W modules wide starting at x.
            let (x, rest) = segment.split_once(" 0h").unwrap();
            let (width, _) = rest.split_once('v').unwrap();
            let x: usize = x.parse().unwrap();
            let width: usize = width.parse().unwrap();
            is_bar[x..x + width].iter_mut().for_each(|module| *module = true);
        }
        let modules: String = is_bar.iter().map(|&bar| if bar { '1' } else { '0' }).collect();
        let text = root.descendants().find(|node| node.has_tag_name("text")).unwrap().text().unwrap().to_string();
        (modules, text.into_bytes())
    }

    /// Splits a module string (without quiet zones and stop pattern) into 11-module symbols and looks each one up.
    fn symbols_from_modules(modules: &str) -> Vec<u8> {
        modules
            .as_bytes()
            .chunks(11)
            .map(|chunk| {
                let mut widths = Vec::new();
                for (index, &module) in chunk.iter().enumerate() {
                    if index == 0 || module != chunk[index - 1] {
                        widths.push(b'0');
                    }
                    *widths.last_mut().unwrap() += 1;
                }
                CODE128_SYMBOL_WIDTHS.iter().position(|symbol| symbol[..] == widths[..]).unwrap() as u8
            })
            .collect()
    }

    #[test]
    fn code128_checksum_matches_published_examples() {
        // Wikipedia's "PJJ123C" example gives 54 in code set A (start value 103); these characters have the same
        // values in set B, whose start value is 104, so the B check value is 55 ('W').
        let symbols = code128_symbols("PJJ123C").unwrap();
        assert_eq!(symbols, [104, 48, 42, 42, 17, 18, 19, 35, 55]);
        assert_eq!(code128_checksum(&[103, 48, 42, 42, 17, 18, 19, 35]), 54);
        // barcoderesource.com's Code 128B example: "abcdef" has check value 97.
        assert_eq!(*code128_symbols("abcdef").unwrap().last().unwrap(), 97);
    }

    #[test]
    fn code128_symbol_table_is_consistent() {
        for (value, symbol) in CODE128_SYMBOL_WIDTHS.iter().enumerate() {
            let widths: Vec<u32> = symbol.iter().map(|digit| u32::from(digit - b'0')).collect();
            assert!(widths.iter().all(|width| (1..=4).contains(width)), "symbol {value}");
            assert_eq!(widths.iter().sum::<u32>(), 11, "symbol {value}");
            // Every Code 128 symbol has an even number of bar modules (its parity check).
            assert_eq!((widths[0] + widths[2] + widths[4]) % 2, 0, "symbol {value}");
        }
        let mut distinct = CODE128_SYMBOL_WIDTHS.to_vec();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), CODE128_SYMBOL_WIDTHS.len());
        assert_eq!(CODE128_STOP_WIDTHS.iter().map(|digit| u32::from(digit - b'0')).sum::<u32>(), 13);
    }

    #[test]
    fn code128_svg_draws_start_data_check_and_stop() {
        for text in ["t3-1f-0.v2", "PJJ123C", " !\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`{|}~", "A"] {
            let svg = code128_svg(text).unwrap();
            let (modules, printed_text) = read_code128_svg(&svg);
            assert_eq!(printed_text, text.as_bytes(), "human-readable text");
            let quiet_zone = "0".repeat(CODE128_QUIET_ZONE_MODULES);
            let symbol = modules.strip_prefix(&quiet_zone).and_then(|m| m.strip_suffix(&quiet_zone)).unwrap();
            // Published bit patterns: Start B "11010010000", stop "1100011101011" (stop plus termination bar).
            assert!(symbol.starts_with("11010010000"));
            let data_symbols = symbol.strip_suffix("1100011101011").unwrap();
            assert_eq!(data_symbols.len(), 11 * (text.len() + 2));
            let symbols = symbols_from_modules(data_symbols);
            assert_eq!(symbols, code128_symbols(text).unwrap());
            let data: Vec<u8> = symbols[1..symbols.len() - 1].iter().map(|value| value + b' ').collect();
            assert_eq!(data, text.as_bytes());
        }
        // A published pattern of one data symbol: 'A' (value 33) is "10100011000".
        let (modules, _) = read_code128_svg(&code128_svg("A").unwrap());
        assert_eq!(&modules[CODE128_QUIET_ZONE_MODULES + 11..CODE128_QUIET_ZONE_MODULES + 22], "10100011000");
    }

    #[test]
    fn code128_refuses_bad_text() {
        assert!(matches!(code128_svg(""), Err(RenderError::Empty)));
        assert!(matches!(code128_svg(&"x".repeat(65)), Err(RenderError::TooLong { length: 65, length_max: 64 })));
        assert!(code128_svg(&"x".repeat(64)).is_ok());
        assert!(matches!(
            code128_svg("t3\u{1f}"),
            Err(RenderError::InvalidCharacter { character: '\u{1f}', position: 2 })
        ));
        assert!(matches!(code128_svg("ticket\u{7f}"), Err(RenderError::InvalidCharacter { position: 6, .. })));
        assert!(matches!(code128_svg("t→3"), Err(RenderError::InvalidCharacter { character: '→', position: 1 })));
    }

    #[test]
    fn rendering_is_deterministic() {
        let code = sample_code(130);
        assert_eq!(qr_svg(&code).unwrap(), qr_svg(&code).unwrap());
        assert_eq!(qr_png(&code, 4).unwrap(), qr_png(&code, 4).unwrap());
        assert_eq!(code128_svg("t3-1f-0.v2").unwrap(), code128_svg("t3-1f-0.v2").unwrap());
        assert_eq!(ticket_html(&sample_page()), ticket_html(&sample_page()));
    }

    /// Parses a ticket page as XML: stricter than HTML, so an unescaped `<` or `&` from a field fails here.
    fn parse_page(html: &str) -> roxmltree::Document<'_> {
        let options = roxmltree::ParsingOptions { allow_dtd: true, ..roxmltree::ParsingOptions::default() };
        roxmltree::Document::parse_with_options(html, options).expect("ticket page is well-formed")
    }

    /// The text of the element with `class`, read back by an XML parser (so entities are decoded).
    fn text_of_class(document: &roxmltree::Document, class: &str) -> String {
        let node = document.descendants().find(|node| node.attribute("class") == Some(class)).unwrap();
        node.descendants().filter(|node| node.is_text()).filter_map(|node| node.text()).collect()
    }

    #[test]
    fn ticket_html_escapes_every_field() {
        let hostile = |field: &str| format!("<script>alert('{field}')</script> & \"{field}\" <b>");
        let page = TicketPage {
            event_name: hostile("event"),
            starts_at: hostile("starts"),
            venue: hostile("venue"),
            place: hostile("place"),
            ticket_type: hostile("type"),
            price: hostile("price"),
            holder: hostile("holder"),
            ticket_id: hostile("id"),
            state: hostile("state"),
            ..sample_page()
        };
        let html = ticket_html(&page);
        assert!(!html.contains("<script"), "a field's markup leaked");
        assert!(!html.contains("<b>"));
        assert!(html.contains("&lt;script&gt;alert(&#39;holder&#39;)&lt;/script&gt; &amp; &quot;holder&quot;"));
        // Parsed back, each field reads exactly as given: escaped once, not twice.
        let document = parse_page(&html);
        for (class, value) in [
            ("event-name", &page.event_name),
            ("starts-at", &page.starts_at),
            ("venue", &page.venue),
            ("place", &page.place),
            ("ticket-type", &page.ticket_type),
            ("price", &page.price),
            ("holder", &page.holder),
            ("ticket-id", &page.ticket_id),
            ("state", &page.state),
        ] {
            assert_eq!(&text_of_class(&document, class), value, "field {class}");
        }
        assert!(document.descendants().all(|node| !node.has_tag_name("script")));
    }

    #[test]
    fn ticket_html_holds_both_symbols_and_the_note() {
        let page = sample_page();
        let html = ticket_html(&page);
        assert!(html.contains(&qr_svg(&page.code).unwrap()));
        assert!(html.contains(&code128_svg(&page.barcode_text).unwrap()));
        assert_eq!(text_of_class(&parse_page(&html), "note"), VALIDITY_NOTE);
        // No external resources: the only URLs are the SVG namespace names.
        assert_eq!(
            html.matches("http://").count() + html.matches("https://").count(),
            html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
        );
        let document = parse_page(&html);
        assert_eq!(document.descendants().filter(|node| node.has_tag_name("svg")).count(), 2);
        assert_eq!(text_of_class(&document, "place"), "Section B · Row 4 · Seat 17");
    }

    #[test]
    fn ticket_html_falls_back_to_text_when_a_symbol_cannot_be_made() {
        let page = TicketPage {
            code: format!("{}<é>", sample_code(20)),
            barcode_text: "x".repeat(BARCODE_TEXT_LENGTH_MAX + 1),
            ..sample_page()
        };
        let html = ticket_html(&page);
        let document = parse_page(&html);
        assert_eq!(document.descendants().filter(|node| node.has_tag_name("svg")).count(), 0);
        let fallbacks: Vec<String> = document
            .descendants()
            .filter(|node| node.attribute("class") == Some("fallback"))
            .map(|node| node.descendants().filter(|node| node.is_text()).filter_map(|node| node.text()).collect())
            .collect();
        assert_eq!(fallbacks.len(), 2);
        assert!(fallbacks[0].starts_with("QR code unavailable: character 'é' at position 21"), "{}", fallbacks[0]);
        assert!(fallbacks[0].ends_with(&format!("Ticket code: {}", page.code)));
        assert!(fallbacks[1].starts_with("Barcode unavailable: the text to encode is 65 bytes long"));
        // The shown text is cut at the limit: 64 of the 65 characters.
        assert!(fallbacks[1].ends_with(&format!("Barcode text: {}", "x".repeat(BARCODE_TEXT_LENGTH_MAX))));

        let html = ticket_html(&TicketPage { barcode_text: String::new(), ..sample_page() });
        let document = parse_page(&html);
        assert_eq!(text_of_class(&document, "fallback"), "Barcode unavailable: the text to encode is empty.");
    }

    /// Writes sample output for a person to look at, only when HAKKEN_RENDER_SAMPLES_DIR names a directory:
    /// render-sample.png (QR), render-sample.html (page) and render-sample-code128.png (barcode, for a scanner app).
    #[test]
    fn write_samples_when_asked() {
        let Some(directory) = std::env::var_os("HAKKEN_RENDER_SAMPLES_DIR") else { return };
        let directory = std::path::PathBuf::from(directory);
        let page = sample_page();
        std::fs::write(directory.join("render-sample.png"), qr_png(&page.code, 8).unwrap()).unwrap();
        std::fs::write(directory.join("render-sample.html"), ticket_html(&page)).unwrap();

        let module_px = 3;
        let (modules, _) = read_code128_svg(&code128_svg(&page.barcode_text).unwrap());
        let width_px = modules.len() * module_px;
        let height_px = 60 * module_px;
        let row: Vec<u8> =
            modules.bytes().flat_map(|m| std::iter::repeat_n(if m == b'1' { 0 } else { 255 }, module_px)).collect();
        let luma: Vec<u8> = row.iter().copied().cycle().take(width_px * height_px).collect();
        let mut png_bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut png_bytes, width_px as u32, height_px as u32);
        encoder.set_color(png::ColorType::Grayscale);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&luma).unwrap();
        writer.finish().unwrap();
        std::fs::write(directory.join("render-sample-code128.png"), png_bytes).unwrap();
    }
}
