//! The QR symbol of a ticket code: its module matrix ([`QrModules`], from the `qrcode`
//! crate: level M, a 4-module quiet zone) and a 1-bit PNG drawn from it. The one copy:
//! the email's inline images use [`qr_png`], and `hakken-api`'s renderer (the ticket page's
//! SVG, the PNG endpoint) draws from [`qr_modules`] and [`png_of_modules`], so a scanner
//! reads every picture of a code alike. (This crate has no engine or RocksDB, so the API
//! can depend on it, not the other way round.)

use qrcode::canvas::{Canvas, MaskPattern};
use qrcode::{Color, EcLevel};

/// Longest code drawn, as in the API's renderer: ticket codes are ~135 characters.
pub const CODE_LENGTH_MAX: usize = 512;

/// Light modules around the symbol: ISO/IEC 18004 asks for at least 4, and scanners
/// need them to find the symbol.
pub const QUIET_ZONE_MODULES: usize = 4;

/// Pixels per module in the email's PNG: a ~135-character code is a version 10 symbol
/// (57 modules + quiet zone = 65), so 6 px gives a 390 px image, large enough for a phone
/// screen held to a gate scanner and small enough for mail (~1-2 KB at 1 bit per pixel).
pub const EMAIL_MODULE_PX: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the ticket code is empty")]
    Empty,
    #[error("the ticket code is {length} bytes long; at most {CODE_LENGTH_MAX} are drawn")]
    TooLong { length: usize },
    #[error("the ticket code has a character that is not printable ASCII at byte {position}")]
    NotPrintableAscii { position: usize },
    #[error("the QR encoder refused the code: {0}")]
    Encoding(#[source] qrcode::types::QrError),
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
}

/// The QR symbol's modules, quiet zone included, row by row. `true` is a dark module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrModules {
    /// Width and height in modules (the symbol plus two quiet zones).
    pub size: usize,
    pub dark: Vec<bool>,
}

impl QrModules {
    pub fn rows(&self) -> impl Iterator<Item = &[bool]> {
        self.dark.chunks_exact(self.size)
    }
}

/// The code as a QR symbol (level M, 4-module quiet zone) in a 1-bit grayscale PNG, as
/// the email shows it.
pub fn qr_png(code: &str) -> Result<Vec<u8>, QrError> {
    check_code(code)?;
    let modules = qr_modules(code).map_err(QrError::Encoding)?;
    Ok(png_of_modules(&modules, EMAIL_MODULE_PX)?)
}

/// The data masks in the order the `qrcode` crate tries them (the first of equal
/// scores wins, as there).
const MASKS: [MaskPattern; 8] = [
    MaskPattern::Checkerboard,
    MaskPattern::HorizontalLines,
    MaskPattern::VerticalLines,
    MaskPattern::DiagonalLines,
    MaskPattern::LargeCheckerboard,
    MaskPattern::Fields,
    MaskPattern::Diamonds,
    MaskPattern::Meadow,
];

/// The module matrix of `code`'s symbol: level M, and the data mask of lowest penalty
/// score, as the standard asks (a fixed mask was cheaper still, but a 512-character code
/// drawn at 1 px per module then failed to scan). The `qrcode` crate draws the symbol;
/// the masks are scored here ([`penalty`]), with the crate's own rules, because its
/// scoring allocates at every position it looks at and was most of an email's CPU. The
/// caller checked the code (length, printable ASCII); the encoder's own refusal is not
/// expected for such codes.
pub fn qr_modules(code: &str) -> Result<QrModules, qrcode::types::QrError> {
    let bits = qrcode::bits::encode_auto(code.as_bytes(), EcLevel::M)?;
    let version = bits.version();
    let (data, error_correction) = qrcode::ec::construct_codewords(&bits.into_bytes(), version, EcLevel::M)?;
    let mut unmasked = Canvas::new(version, EcLevel::M);
    unmasked.draw_all_functional_patterns();
    unmasked.draw_data(&data, &error_correction);
    // A version is 21..=177 modules wide.
    let symbol_size = usize::try_from(version.width()).unwrap_or(0);
    let mut best: Option<(u32, Vec<bool>)> = None;
    for mask in MASKS {
        let mut canvas = unmasked.clone();
        canvas.apply_mask(mask);
        let symbol: Vec<bool> = canvas.into_colors().into_iter().map(|color| color == Color::Dark).collect();
        let score = penalty(&symbol, symbol_size);
        if best.as_ref().is_none_or(|(lowest, _)| score < *lowest) {
            best = Some((score, symbol));
        }
    }
    let (_, symbol) = best.expect("eight masks were scored");
    let size = symbol_size + 2 * QUIET_ZONE_MODULES;
    let mut dark = vec![false; size * size];
    for (index, is_dark) in symbol.into_iter().enumerate() {
        let x = QUIET_ZONE_MODULES + index % symbol_size;
        let y = QUIET_ZONE_MODULES + index / symbol_size;
        dark[y * size + x] = is_dark;
    }
    Ok(QrModules { size, dark })
}

/// The penalty score of a masked symbol (`width` × `width`, row-major, `true` dark), by
/// the rules of ISO/IEC 18004 §7.8.3 as the `qrcode` crate applies them (so it picks the
/// same mask): runs of five or more alike in a row or column (length − 2 each), 2×2
/// blocks alike (3 each), `#.###.#` with four light modules (or the edge) on one side
/// (40 each), and the dark share's distance from 50%.
fn penalty(symbol: &[bool], width: usize) -> u32 {
    // Every row and column as a bitset (bit x = module x, dark set), so each rule is a
    // few shifts and popcounts per line instead of a loop over modules.
    let mut rows = vec![Line::default(); width];
    let mut columns = vec![Line::default(); width];
    for (index, _) in symbol.iter().enumerate().filter(|(_, is_dark)| **is_dark) {
        let (x, y) = (index % width, index / width);
        rows[y].set(x);
        columns[x].set(y);
    }
    let valid = Line::first(width);
    let mut score = 0;
    for line in rows.iter().chain(&columns) {
        // Runs: `same[x]` says module x is like x + 1; a run of n ≥ 5 alike is n - 1 ones
        // there and scores n - 2, which is (its windows of four ones) + 2.
        let same = line.xor(&line.shr(1)).not().and(&Line::first(width - 1));
        let four = same.and(&same.shr(1)).and(&same.shr(2)).and(&same.shr(3));
        score += four.count() + 2 * four.and(&four.shl(1).not()).count();
        // `#.###.#` starting at x, with the four modules before it (or the edge) light, or
        // the four after it.
        let dark = |shift: usize| line.shr(shift);
        let light = |shift: usize| line.shr(shift).not();
        let finder = dark(0).and(&light(1)).and(&dark(2)).and(&dark(3)).and(&dark(4)).and(&light(5)).and(&dark(6));
        let finder = finder.and(&Line::first(width.saturating_sub(6)));
        let before = line.shl(1).or(&line.shl(2)).or(&line.shl(3)).or(&line.shl(4)).not();
        let after = line.shr(7).or(&line.shr(8)).or(&line.shr(9)).or(&line.shr(10)).not();
        score += 40 * finder.and(&before.or(&after)).count();
    }
    // 2×2 blocks alike: the row like the one below at x and x + 1, and like itself at x + 1.
    for (row, below) in rows.iter().zip(rows.iter().skip(1)) {
        let vertical = row.xor(below).not();
        let horizontal = row.xor(&row.shr(1)).not();
        score += 3 * vertical.and(&vertical.shr(1)).and(&horizontal).and(&Line::first(width - 1)).count();
    }
    let dark: u32 = rows.iter().map(|row| row.and(&valid).count()).sum();
    let ratio = dark as usize * 200 / symbol.len();
    score + ratio.abs_diff(100) as u32
}

/// A row or column of at most 192 modules (a symbol is at most 177 wide), bit x = module x.
#[derive(Clone, Copy, Default)]
struct Line([u64; 3]);

impl Line {
    /// Bits 0..n set.
    fn first(n: usize) -> Line {
        let mut line = Line::default();
        for (index, word) in line.0.iter_mut().enumerate() {
            let bits = n.saturating_sub(index * 64).min(64);
            *word = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        }
        line
    }

    fn set(&mut self, x: usize) {
        self.0[x / 64] |= 1 << (x % 64);
    }

    /// Bit x of the result is bit x + n of `self` (zeros come in past the end).
    fn shr(&self, n: usize) -> Line {
        let (words, bits) = (n / 64, n % 64);
        let mut out = Line::default();
        for index in 0..3 {
            let low = self.0.get(index + words).copied().unwrap_or(0);
            let high = self.0.get(index + words + 1).copied().unwrap_or(0);
            out.0[index] = if bits == 0 { low } else { (low >> bits) | (high << (64 - bits)) };
        }
        out
    }

    /// Bit x of the result is bit x - n of `self` (zeros come in before the start).
    fn shl(&self, n: usize) -> Line {
        let (words, bits) = (n / 64, n % 64);
        let mut out = Line::default();
        for index in 0..3_usize {
            let word = |at: usize| if at < 3 { self.0[at] } else { 0 };
            let high = index.checked_sub(words).map_or(0, word);
            let low = index.checked_sub(words + 1).map_or(0, word);
            out.0[index] = if bits == 0 { high } else { (high << bits) | (low >> (64 - bits)) };
        }
        out
    }

    fn and(&self, other: &Line) -> Line {
        Line([self.0[0] & other.0[0], self.0[1] & other.0[1], self.0[2] & other.0[2]])
    }

    fn or(&self, other: &Line) -> Line {
        Line([self.0[0] | other.0[0], self.0[1] | other.0[1], self.0[2] | other.0[2]])
    }

    fn xor(&self, other: &Line) -> Line {
        Line([self.0[0] ^ other.0[0], self.0[1] ^ other.0[1], self.0[2] ^ other.0[2]])
    }

    fn not(&self) -> Line {
        Line([!self.0[0], !self.0[1], !self.0[2]])
    }

    fn count(&self) -> u32 {
        self.0.iter().map(|word| word.count_ones()).sum()
    }
}

fn check_code(code: &str) -> Result<(), QrError> {
    if code.is_empty() {
        return Err(QrError::Empty);
    }
    if code.len() > CODE_LENGTH_MAX {
        return Err(QrError::TooLong { length: code.len() });
    }
    match code.bytes().position(|byte| !(b' '..=b'~').contains(&byte)) {
        Some(position) => Err(QrError::NotPrintableAscii { position }),
        None => Ok(()),
    }
}

/// A 1-bit grayscale PNG of `modules`, each `module_px` × `module_px` pixels (at least 1;
/// the caller bounds it, since memory grows with its square).
pub fn png_of_modules(modules: &QrModules, module_px: usize) -> Result<Vec<u8>, png::EncodingError> {
    // 1 bit per pixel: the image is pure black and white, and 1-bit rows take 8× less
    // memory than 8-bit ones.
    let module_px = module_px.max(1);
    let size_px = modules.size * module_px;
    let row_bytes = size_px.div_ceil(8);
    let mut pixels = Vec::with_capacity(row_bytes * size_px);
    for row in modules.rows() {
        // Grayscale 0 is black, so light pixels are the set bits, most significant first.
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
    // A symbol is at most 185 modules (version 40) + quiet zone; callers keep module_px
    // small, so this fits a u32 (saturating keeps an absurd size an encoder error).
    let size_px = u32::try_from(size_px).unwrap_or(u32::MAX);
    let mut png_bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut png_bytes, size_px, size_px);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    // fdeflate: the default (miniz) allocates and zeroes its tables for every image,
    // which was a third of the time; this one compresses these rows about as well.
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(png_bytes)
}

#[cfg(test)]
#[path = "../tests/support/qr_scan.rs"]
mod qr_scan;

#[cfg(test)]
mod tests {
    use super::qr_scan::decode_qr_png;
    use super::*;

    #[test]
    fn the_png_scans_back_to_the_code() {
        let code = format!("HK1.{}", "A".repeat(131));
        assert_eq!(decode_qr_png(&qr_png(&code).expect("png")), vec![code]);
    }

    #[test]
    fn the_mask_chosen_is_the_qrcode_crates() {
        // Codes of every length class and mode mix; the same symbol means the same mask.
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
        for (index, length) in [1, 5, 17, 40, 77, 135, 136, 200, 300, 512].iter().cycle().take(60).enumerate() {
            let code: String = (0..*length).map(|k| alphabet[(k * 31 + index * 17 + k / 7) % 65] as char).collect();
            let ours = qr_modules(&code).expect("ours");
            let theirs = qrcode::QrCode::with_error_correction_level(code.as_bytes(), EcLevel::M).expect("theirs");
            let width = theirs.width();
            assert_eq!(ours.size, width + 2 * QUIET_ZONE_MODULES);
            for (position, color) in theirs.into_colors().into_iter().enumerate() {
                let (x, y) = (QUIET_ZONE_MODULES + position % width, QUIET_ZONE_MODULES + position / width);
                assert_eq!(ours.dark[y * ours.size + x], color == Color::Dark, "code of {length} characters");
            }
        }
    }

    /// The penalty module by module, as the `qrcode` crate counts it: the reference the
    /// bitset version must equal.
    fn penalty_by_module(symbol: &[bool], width: usize) -> u32 {
        let at = |x: usize, y: usize| symbol[y * width + x];
        let mut score = 0;
        for horizontal in [true, false] {
            for line in 0..width {
                let module = |k: usize| if horizontal { at(k, line) } else { at(line, k) };
                let mut run = 1;
                for k in 1..=width {
                    if k < width && module(k) == module(k - 1) {
                        run += 1;
                        continue;
                    }
                    if run >= 5 {
                        score += run - 2;
                    }
                    run = 1;
                }
                let finder = [true, false, true, true, true, false, true];
                let dark_within =
                    |from: isize, to: isize| (from..to).any(|k| k >= 0 && (k as usize) < width && module(k as usize));
                for start in 0..width.saturating_sub(6) {
                    if (0..7).all(|k| module(start + k) == finder[k]) {
                        let start = start as isize;
                        if !dark_within(start - 4, start) || !dark_within(start + 7, start + 11) {
                            score += 40;
                        }
                    }
                }
            }
        }
        for y in 0..width - 1 {
            for x in 0..width - 1 {
                let module = at(x, y);
                if module == at(x + 1, y) && module == at(x, y + 1) && module == at(x + 1, y + 1) {
                    score += 3;
                }
            }
        }
        let dark = symbol.iter().filter(|is_dark| **is_dark).count();
        score + (dark * 200 / symbol.len()).abs_diff(100) as u32
    }

    #[test]
    fn the_bitset_penalty_counts_as_the_module_by_module_one() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Widths around the word edges and the largest symbol; dense, sparse and striped.
        for width in [21, 57, 63, 64, 65, 127, 128, 129, 177] {
            for density in [2, 4, 8] {
                let symbol: Vec<bool> = (0..width * width).map(|_| next() % density == 0).collect();
                assert_eq!(penalty(&symbol, width), penalty_by_module(&symbol, width), "width {width}");
            }
            let striped: Vec<bool> = (0..width * width).map(|index| (index % width) % 11 < 5).collect();
            assert_eq!(penalty(&striped, width), penalty_by_module(&striped, width), "striped, width {width}");
        }
    }

    #[test]
    fn bad_codes_are_refused() {
        assert!(matches!(qr_png(""), Err(QrError::Empty)));
        assert!(matches!(qr_png(&"A".repeat(CODE_LENGTH_MAX + 1)), Err(QrError::TooLong { .. })));
        assert!(matches!(qr_png("HK1.é"), Err(QrError::NotPrintableAscii { position: 4 })));
    }
}
