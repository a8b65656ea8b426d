//! Code 128 (code set B) barcodes for printed tickets: one table and a checksum.

use super::{check_printable_ascii, escape_html, RenderError, Run};

/// Longest text we put in a Code 128 barcode. Ticket id and version are ~10–40 characters; at 64 the symbol is
/// 759 modules wide, which still gives ~0.2 mm modules across the 164 mm of a printed A4 or Letter ticket.
pub(crate) const BARCODE_TEXT_LENGTH_MAX: usize = 64;

/// Light modules on each side of the Code 128 symbol (ISO/IEC 15417 asks for at least 10).
pub(crate) const CODE128_QUIET_ZONE_MODULES: usize = 10;

/// Pixels per module in the barcode SVG's `width`/`height`; as for the QR, the viewBox is in modules.
pub(super) const CODE128_SVG_MODULE_PX: usize = 2;

/// Bar height in modules: 10 mm at 0.2 mm per module, tall enough for a handheld scanner's tilted sweep.
pub(super) const CODE128_BAR_HEIGHT_MODULES: usize = 50;

/// Font size of the human-readable text under the bars.
pub(super) const CODE128_FONT_SIZE_MODULES: usize = 10;

/// Room under the bars for the human-readable text: the font size plus gaps above and below.
pub(super) const CODE128_TEXT_BAND_MODULES: usize = CODE128_FONT_SIZE_MODULES + 4;

/// Symbol value of "Start code B": data symbols that follow are printable ASCII minus 32.
pub(super) const CODE128_START_B: u8 = 104;

/// Code 128's check symbol is the weighted sum of all symbols modulo this.
pub(super) const CODE128_CHECKSUM_MODULUS: u32 = 103;

/// Bar and space widths in modules, bar first, of Code 128 symbol values 0..=105 (ISO/IEC 15417, table 1). Each
/// symbol is 3 bars and 3 spaces, 11 modules wide. Written as digits so it can be compared with published tables.
pub(super) const CODE128_SYMBOL_WIDTHS: [[u8; 6]; 106] = [
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
pub(super) const CODE128_STOP_WIDTHS: [u8; 7] = *b"2331112";

/// `text` as a Code 128 barcode (code set B) in SVG: one `<path>` holds the bars, the text is printed under them.
pub fn code128_svg(text: &str) -> Result<String, RenderError> {
    let symbols = code128_symbols(text)?;
    let element_widths = code128_element_widths(&symbols);
    Ok(code128_svg_from_widths(text, &element_widths))
}

/// The symbol values to draw: start B, one symbol per character, then the check symbol (the stop pattern is fixed
/// and drawn separately). Code set B covers printable ASCII; set C for digit pairs would only make long digit runs
/// shorter, and ticket ids are mostly letters.
pub(super) fn code128_symbols(text: &str) -> Result<Vec<u8>, RenderError> {
    check_printable_ascii(text, BARCODE_TEXT_LENGTH_MAX)?;
    let mut symbols = Vec::with_capacity(text.len() + 2);
    symbols.push(CODE128_START_B);
    symbols.extend(text.bytes().map(|byte| byte - b' '));
    symbols.push(code128_checksum(&symbols));
    Ok(symbols)
}

/// Weighted sum modulo 103 of the start symbol (weight 1) and the data symbols (weights 1, 2, 3, ...).
pub(super) fn code128_checksum(start_and_data: &[u8]) -> u8 {
    let weighted_sum: u32 =
        start_and_data.iter().enumerate().map(|(position, &value)| u32::from(value) * position.max(1) as u32).sum();
    // The remainder is below 103, so it fits a u8 and is a valid symbol value.
    (weighted_sum % CODE128_CHECKSUM_MODULUS) as u8
}

/// Alternating bar and space widths in modules, bar first, for the symbols followed by the stop pattern.
pub(super) fn code128_element_widths(symbols: &[u8]) -> Vec<u8> {
    let mut widths = Vec::with_capacity(symbols.len() * 6 + CODE128_STOP_WIDTHS.len());
    for &symbol in symbols {
        widths.extend(CODE128_SYMBOL_WIDTHS[usize::from(symbol)].iter().map(|digit| digit - b'0'));
    }
    widths.extend(CODE128_STOP_WIDTHS.iter().map(|digit| digit - b'0'));
    widths
}

/// The bars (even-numbered elements), placed after the left quiet zone.
pub(super) fn code128_bars(element_widths: &[u8]) -> Vec<Run> {
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

pub(super) fn code128_svg_from_widths(text: &str, element_widths: &[u8]) -> String {
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
