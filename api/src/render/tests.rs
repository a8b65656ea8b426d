//! Tests of the renderers: what they draw decodes back to what they were given.

use hakken_notify::Language;

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
        language: Language::En,
        event_name: "Hakken Demo Night 2027".to_string(),
        starts_at: "Friday 12 March 2027, 19:30 (CET)".to_string(),
        venue: "Grand Hall, 1 Example Street, Springfield".to_string(),
        place: "Section B, Row 4, Seat 17".to_string(),
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
            let in_quiet_zone = x.min(y) < hakken_notify::qr::QUIET_ZONE_MODULES
                || x.max(y) >= modules.size - hakken_notify::qr::QUIET_ZONE_MODULES;
            assert!(!(in_quiet_zone && is_dark), "dark module ({x}, {y}) in the quiet zone");
        }
    }
    // The finder pattern's corner starts right after the quiet zone.
    assert!(modules.dark[hakken_notify::qr::QUIET_ZONE_MODULES * modules.size + hakken_notify::qr::QUIET_ZONE_MODULES]);
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
    assert!(matches!(code128_svg("t3\u{1f}"), Err(RenderError::InvalidCharacter { character: '\u{1f}', position: 2 })));
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
    assert_eq!(text_of_class(&parse_page(&html), "note"), Words::of(Language::En).validity_note);
    // No external resources: the only URLs are the SVG namespace names.
    assert_eq!(
        html.matches("http://").count() + html.matches("https://").count(),
        html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
    let document = parse_page(&html);
    assert_eq!(document.descendants().filter(|node| node.has_tag_name("svg")).count(), 2);
    assert_eq!(text_of_class(&document, "place"), "Section B, Row 4, Seat 17");
}

/// The labels of the details, in order, read back from the page.
fn labels(document: &roxmltree::Document) -> Vec<String> {
    document.descendants().filter(|node| node.has_tag_name("dt")).map(|node| node.text().unwrap().to_string()).collect()
}

#[test]
fn ticket_html_labels_are_in_the_page_language() {
    let english = ticket_html(&sample_page());
    let document = parse_page(&english);
    assert_eq!(document.root_element().attribute("lang"), Some("en"));
    assert_eq!(labels(&document), ["Place", "Ticket type", "Price", "Holder", "Ticket", "State"]);

    let page = TicketPage {
        language: Language::Ja,
        starts_at: "2027年7月10日(土) 17:30 開演".to_string(),
        place: "アリーナ Aブロック 3列 12番".to_string(),
        ..sample_page()
    };
    let japanese = ticket_html(&page);
    let document = parse_page(&japanese);
    assert_eq!(document.root_element().attribute("lang"), Some("ja"));
    assert_eq!(labels(&document), ["座席", "券種", "料金", "名義", "チケット", "状態"]);
    assert_eq!(text_of_class(&document, "note"), Words::of(Language::Ja).validity_note);
    assert_eq!(text_of_class(&document, "starts-at"), page.starts_at);
    assert_eq!(text_of_class(&document, "place"), page.place);
    let title = document.descendants().find(|node| node.has_tag_name("title")).unwrap().text().unwrap();
    assert_eq!(title, "チケット t3-1f-0 — Hakken Demo Night 2027");
    // A symbol that cannot be made says so in the page's language too.
    let broken = ticket_html(&TicketPage { barcode_text: String::new(), ..page });
    assert_eq!(
        text_of_class(&parse_page(&broken), "fallback"),
        "バーコードを表示できません: the text to encode is empty."
    );
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
