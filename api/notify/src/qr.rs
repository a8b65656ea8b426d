//! The QR symbol of a ticket code: its module matrix ([`QrModules`], from the `qrcode`
//! crate: level M, a 4-module quiet zone) and a 1-bit PNG drawn from it. The one copy:
//! the email's inline images use [`qr_png`], and `hakken-api`'s renderer (the ticket page's
//! SVG, the PNG endpoint) draws from [`qr_modules`] and [`png_of_modules`], so a scanner
//! reads every picture of a code alike. (This crate has no engine or RocksDB, so the API
//! can depend on it, not the other way round.)

use qrcode::{Color, EcLevel, QrCode};

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

/// The module matrix of `code`'s symbol. The caller checked the code (length, printable
/// ASCII); the encoder's own refusal is not expected for such codes.
pub fn qr_modules(code: &str) -> Result<QrModules, qrcode::types::QrError> {
    let symbol = QrCode::with_error_correction_level(code.as_bytes(), EcLevel::M)?;
    let symbol_size = symbol.width();
    let size = symbol_size + 2 * QUIET_ZONE_MODULES;
    let mut dark = vec![false; size * size];
    for (index, color) in symbol.into_colors().into_iter().enumerate() {
        let x = QUIET_ZONE_MODULES + index % symbol_size;
        let y = QUIET_ZONE_MODULES + index / symbol_size;
        dark[y * size + x] = color == Color::Dark;
    }
    Ok(QrModules { size, dark })
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
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(png_bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Decodes a PNG with png's own decoder and reads every QR symbol in it with rqrr.
    pub(crate) fn decode_qr_png(png_bytes: &[u8]) -> Vec<String> {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().expect("PNG header");
        let mut luma = vec![0; reader.output_buffer_size().expect("buffer size")];
        let frame = reader.next_frame(&mut luma).expect("PNG frame");
        let width = frame.width as usize;
        let mut image =
            rqrr::PreparedImage::prepare_from_greyscale(width, frame.height as usize, |x, y| luma[y * width + x]);
        image.detect_grids().iter().map(|grid| grid.decode().expect("a detected grid decodes").1).collect()
    }

    #[test]
    fn the_png_scans_back_to_the_code() {
        let code = format!("HK1.{}", "A".repeat(131));
        assert_eq!(decode_qr_png(&qr_png(&code).expect("png")), vec![code]);
    }

    #[test]
    fn bad_codes_are_refused() {
        assert!(matches!(qr_png(""), Err(QrError::Empty)));
        assert!(matches!(qr_png(&"A".repeat(CODE_LENGTH_MAX + 1)), Err(QrError::TooLong { .. })));
        assert!(matches!(qr_png("HK1.é"), Err(QrError::NotPrintableAscii { position: 4 })));
    }
}
