//! The QR symbol of a ticket's code: one module matrix ([`QrModules`]) that both the SVG
//! and the PNG are drawn from, so the two cannot disagree. The matrix and the PNG are
//! `hakken_notify::qr`'s (the email draws the same ones); the SVG is drawn here.

pub(super) use hakken_notify::qr::QrModules;

use super::{check_printable_ascii, RenderError, Run};

/// Longest ticket code we render. Codes are ~130 characters today; 512 leaves room for longer signatures while the
/// QR symbol (version 19 at level M for 512 bytes) still scans from a phone screen or a print.
pub(crate) const CODE_LENGTH_MAX: usize = 512;

/// Pixels per module in the QR SVG's `width`/`height`. The viewBox is in modules, so CSS can scale it freely.
pub(crate) const QR_SVG_MODULE_PX: usize = 8;

/// Smallest PNG module size (1 pixel per module).
pub const QR_PNG_MODULE_PX_MIN: u32 = 1;

/// Largest PNG module size. A 512-character code at 32 px per module is a 3,104 px square: 1.2 MB of 1-bit rows in
/// memory before compression. Larger images only cost memory; printers scale the SVG instead.
pub const QR_PNG_MODULE_PX_MAX: u32 = 32;

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

pub(super) fn qr_modules(code: &str) -> Result<QrModules, RenderError> {
    check_printable_ascii(code, CODE_LENGTH_MAX)?;
    hakken_notify::qr::qr_modules(code).map_err(RenderError::QrEncoding)
}

pub(super) fn dark_runs(row: &[bool]) -> Vec<Run> {
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

pub(super) fn qr_svg_from_modules(modules: &QrModules) -> String {
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

pub(super) fn qr_png_from_modules(modules: &QrModules, module_px: u32) -> Result<Vec<u8>, RenderError> {
    debug_assert!((QR_PNG_MODULE_PX_MIN..=QR_PNG_MODULE_PX_MAX).contains(&module_px), "checked by qr_png");
    Ok(hakken_notify::qr::png_of_modules(modules, module_px as usize)?)
}
