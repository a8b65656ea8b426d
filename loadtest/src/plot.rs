//! `--plot`: the timeline as an SVG chart (to be written by a helper).
