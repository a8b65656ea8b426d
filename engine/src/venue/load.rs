//! Venue TOML loading: turns `config/venues/*.toml` into a [`Venue`].
//!
//! The format is compact: a section lists its rows and seat numbers as ranges
//! (`rows = "A-T"`, `seats = "1-24"`) and `[[section.row]]` tables override some rows,
//! so a 50,000-seat stadium fits in a few hundred readable lines. Every key is
//! documented at the top of `config/venues/hakken-stadium.toml`.
//!
//! A layout is refused rather than guessed at: anything ambiguous (a seat listed twice,
//! an override naming a row that does not exist, an unknown category) is an error that
//! names the file, the line, the section and row, and the problem.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::rc::Rc;

use serde::Deserialize;
use toml::Spanned;

use super::{
    check_time_zone_name, Category, CategoryIndex, Row, Seat, SeatFlags, SeatMap, Section, SectionKind, Venue,
    TIME_ZONE_DEFAULT,
};

/// Categories per venue: a category is addressed by `CategoryIndex(u8)`.
pub(crate) const VENUE_CATEGORIES_MAX: usize = 255;
/// Rows per section: a seat stores its row index as a `u16`.
pub(crate) const SECTION_ROWS_MAX: usize = u16::MAX as usize;
/// Reserved seats per venue. The largest stadiums hold about 150,000 and the layout is
/// sized for a million (8 bytes a seat); the limit keeps a typo such as `rows = "1-60000"`
/// from claiming gigabytes.
pub(crate) const VENUE_SEATS_MAX: usize = 2_000_000;
/// Bytes read from a venue or event file; the demo stadium is about 20 KB.
pub(crate) const CONFIG_FILE_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// Why a venue file was refused, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct VenueError {
    /// The path given to [`Venue::load`], or the name given to [`Venue::parse`].
    pub file: String,
    /// 1-based; `None` only when the file could not be read at all.
    pub line: Option<usize>,
    /// Id of the section the problem is in, if any.
    pub section: Option<String>,
    /// Row label (or the `rows` of a `[[section.row]]` override) the problem is in, if any.
    pub row: Option<String>,
    pub problem: String,
}

impl fmt::Display for VenueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_location(f, &self.file, self.line)?;
        if let Some(section) = &self.section {
            write!(f, "section {section}")?;
            if let Some(row) = &self.row {
                write!(f, " row {row}")?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.problem)
    }
}

impl VenueError {
    fn in_section(mut self, id: &str) -> VenueError {
        self.section = Some(id.to_owned());
        self
    }

    fn in_row(mut self, label: &str) -> VenueError {
        self.row = Some(label.to_owned());
        self
    }
}

/// Writes the `file:line: ` prefix shared by venue and event errors.
pub(crate) fn write_location(f: &mut fmt::Formatter<'_>, file: &str, line: Option<usize>) -> fmt::Result {
    match line {
        Some(line) => write!(f, "{file}:{line}: "),
        None => write!(f, "{file}: "),
    }
}

/// The 1-based line of byte `offset` in `text`.
pub(crate) fn line_number(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset].iter().filter(|&&byte| byte == b'\n').count() + 1
}

/// A TOML error as one line: some messages from `toml` span several.
pub(crate) fn toml_problem(error: &toml::de::Error) -> String {
    error.message().trim().lines().collect::<Vec<_>>().join(": ")
}

/// Reads a config file, refusing files over [`CONFIG_FILE_BYTES_MAX`].
pub(crate) fn read_config_file(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|error| format!("cannot open: {error}"))?;
    let mut text = String::new();
    file.take(CONFIG_FILE_BYTES_MAX + 1).read_to_string(&mut text).map_err(|error| format!("cannot read: {error}"))?;
    if text.len() as u64 > CONFIG_FILE_BYTES_MAX {
        return Err(format!("larger than {CONFIG_FILE_BYTES_MAX} bytes"));
    }
    Ok(text)
}

impl Venue {
    /// Reads and validates a venue file; see the module docs for the format.
    pub fn load(path: &Path) -> Result<Venue, VenueError> {
        let file = path.display().to_string();
        let text = read_config_file(path).map_err(|problem| VenueError {
            file: file.clone(),
            line: None,
            section: None,
            row: None,
            problem,
        })?;
        Venue::parse(&text, &file)
    }

    /// Validates venue TOML; `file` only names the source in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Venue, VenueError> {
        Source { text, file }.venue()
    }
}

// The file as written. Everything is checked and converted in `Source::venue`.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VenueFile {
    venue: Option<Spanned<VenueTable>>,
    #[serde(default)]
    category: Vec<Spanned<CategoryTable>>,
    #[serde(default)]
    section: Vec<Spanned<SectionTable>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VenueTable {
    id: String,
    name: String,
    /// Optional: [`TIME_ZONE_DEFAULT`] when absent.
    time_zone: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryTable {
    id: Spanned<String>,
    name: String,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KindName {
    Reserved,
    GeneralAdmission,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SectionTable {
    id: Spanned<String>,
    name: String,
    kind: KindName,
    category: Spanned<String>,
    // Reserved sections only.
    rows: Option<Spanned<String>>,
    seats: Option<Spanned<String>>,
    aisle: Option<Spanned<String>>,
    quality_front: Option<Spanned<u16>>,
    quality_row_step: Option<Spanned<u16>>,
    quality_seat_step: Option<Spanned<u16>>,
    #[serde(default)]
    row: Vec<Spanned<RowTable>>,
    // General-admission sections only.
    capacity: Option<Spanned<u32>>,
}

/// `[[section.row]]`: overrides for the rows it names.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RowTable {
    rows: Spanned<String>,
    seats: Option<Spanned<String>>,
    category: Option<Spanned<String>>,
    aisle: Option<Spanned<String>>,
    accessible: Option<Spanned<String>>,
    obstructed: Option<Spanned<String>>,
    quality_bonus: Option<i32>,
}

/// Parsed seat numbers (`seats`, `aisle`, `accessible` or `obstructed`) and where they
/// were written. Shared (`Rc`) by every row they apply to.
struct Numbers {
    /// Ascending, unique, never empty.
    list: Vec<u16>,
    key: &'static str,
    span: Range<usize>,
}

impl Numbers {
    fn contains(&self, number: u16) -> bool {
        self.list.binary_search(&number).is_ok()
    }
}

/// One row's layout once the section defaults and every override have been applied.
#[derive(Clone)]
struct RowPlan {
    seats: Rc<Numbers>,
    category: CategoryIndex,
    /// `None`: the lowest and highest seat numbers are the aisle seats.
    aisle: Option<Rc<Numbers>>,
    accessible: Vec<Rc<Numbers>>,
    obstructed: Vec<Rc<Numbers>>,
    quality_bonus: i64,
}

/// How good a seat is; see [`QualityModel::seat`].
struct QualityModel {
    front: u16,
    row_step: u16,
    seat_step: u16,
}

impl QualityModel {
    /// `front - row_index * row_step - distance * seat_step + bonus`, clamped to `u16`.
    ///
    /// `row_index` counts from 0 in the order the rows are listed (the first row listed
    /// is the front row). `distance` is how far the seat is from the middle of the row,
    /// the midpoint of its lowest and highest numbers; it is counted in half seats and
    /// the product halved, rounding down, so both centre seats of an even row score the
    /// same (seats 12 and 13 of 1-24 lose `seat_step / 2`).
    fn seat(&self, row_index: usize, number: u16, lowest: u16, highest: u16, bonus: i64) -> u16 {
        let row_loss = row_index as i64 * i64::from(self.row_step);
        let half_seats = (2 * i64::from(number) - i64::from(lowest) - i64::from(highest)).abs();
        let seat_loss = half_seats * i64::from(self.seat_step) / 2;
        let quality = i64::from(self.front) - row_loss - seat_loss + bonus;
        quality.clamp(0, i64::from(u16::MAX)) as u16
    }
}

/// The text being parsed, for turning byte spans into located errors.
struct Source<'a> {
    text: &'a str,
    file: &'a str,
}

impl Source<'_> {
    fn error(&self, span: Range<usize>, problem: impl Into<String>) -> VenueError {
        VenueError {
            file: self.file.to_owned(),
            line: Some(line_number(self.text, span.start)),
            section: None,
            row: None,
            problem: problem.into(),
        }
    }

    fn venue(&self) -> Result<Venue, VenueError> {
        let file: VenueFile = toml::from_str(self.text)
            .map_err(|error| self.error(error.span().unwrap_or(0..0), toml_problem(&error)))?;
        let Some(header) = file.venue else {
            return Err(self.error(0..0, "missing `[venue]` table"));
        };
        let time_zone = self.time_zone(header.get_ref().time_zone.as_ref())?;
        let categories = self.categories(file.category)?;
        if file.section.is_empty() {
            return Err(self.error(header.span(), "venue has no `[[section]]`"));
        }
        let mut sections: Vec<Section> = Vec::with_capacity(file.section.len());
        let mut first_lines: HashMap<String, usize> = HashMap::new();
        let mut seats_left = VENUE_SEATS_MAX;
        for table in file.section {
            let span = table.span();
            let table = table.into_inner();
            let id = self.section_id(&table.id, &first_lines)?;
            let kind =
                self.section_kind(span, &table, &categories, &mut seats_left).map_err(|error| error.in_section(&id))?;
            first_lines.insert(id.clone(), line_number(self.text, table.id.span().start));
            sections.push(Section { id, name: table.name, kind });
        }
        let header = header.into_inner();
        Ok(Venue { id: header.id, name: header.name, time_zone, categories, sections })
    }

    /// `[venue] time_zone`, checked for shape only (see [`check_time_zone_name`]).
    fn time_zone(&self, time_zone: Option<&Spanned<String>>) -> Result<String, VenueError> {
        let Some(time_zone) = time_zone else {
            return Ok(TIME_ZONE_DEFAULT.to_owned());
        };
        check_time_zone_name(time_zone.get_ref()).map_err(|problem| self.error(time_zone.span(), problem))?;
        Ok(time_zone.get_ref().clone())
    }

    fn categories(&self, tables: Vec<Spanned<CategoryTable>>) -> Result<Vec<Category>, VenueError> {
        if let Some(extra) = tables.get(VENUE_CATEGORIES_MAX) {
            let problem = format!("more than {VENUE_CATEGORIES_MAX} categories");
            return Err(self.error(extra.span(), problem));
        }
        let mut categories: Vec<Category> = Vec::with_capacity(tables.len());
        for table in tables {
            let table = table.into_inner();
            if categories.iter().any(|category| category.id == *table.id.get_ref()) {
                let problem = format!("category {} is defined twice", table.id.get_ref());
                return Err(self.error(table.id.span(), problem));
            }
            categories.push(Category { id: table.id.into_inner(), name: table.name });
        }
        Ok(categories)
    }

    fn category(&self, categories: &[Category], id: &Spanned<String>) -> Result<CategoryIndex, VenueError> {
        let Some(index) = categories.iter().position(|category| category.id == *id.get_ref()) else {
            return Err(self.error(id.span(), format!("unknown category `{}`", id.get_ref())));
        };
        Ok(CategoryIndex(index as u8))
    }

    /// Section ids appear in seat ids and URLs: non-empty, no whitespace, unique.
    fn section_id(&self, id: &Spanned<String>, first_lines: &HashMap<String, usize>) -> Result<String, VenueError> {
        let text = id.get_ref();
        if text.is_empty() || text.chars().any(char::is_whitespace) {
            let problem = format!("section id `{text}` must be non-empty without whitespace");
            return Err(self.error(id.span(), problem));
        }
        if let Some(first_line) = first_lines.get(text) {
            let problem = format!("section id {text} is used twice (first on line {first_line})");
            return Err(self.error(id.span(), problem));
        }
        Ok(text.clone())
    }

    fn section_kind(
        &self,
        span: Range<usize>,
        table: &SectionTable,
        categories: &[Category],
        seats_left: &mut usize,
    ) -> Result<SectionKind, VenueError> {
        let category = self.category(categories, &table.category)?;
        match table.kind {
            KindName::Reserved => {
                if let Some(capacity) = &table.capacity {
                    let problem = "a reserved section has no `capacity`: its seats are its capacity";
                    return Err(self.error(capacity.span(), problem));
                }
                let map = self.seat_map(span, table, category, categories, seats_left)?;
                Ok(SectionKind::Reserved(map))
            }
            KindName::GeneralAdmission => self.general_admission(span, table, category),
        }
    }

    fn general_admission(
        &self,
        span: Range<usize>,
        table: &SectionTable,
        category: CategoryIndex,
    ) -> Result<SectionKind, VenueError> {
        let reserved_only = [
            ("rows", table.rows.as_ref().map(Spanned::span)),
            ("seats", table.seats.as_ref().map(Spanned::span)),
            ("aisle", table.aisle.as_ref().map(Spanned::span)),
            ("quality_front", table.quality_front.as_ref().map(Spanned::span)),
            ("quality_row_step", table.quality_row_step.as_ref().map(Spanned::span)),
            ("quality_seat_step", table.quality_seat_step.as_ref().map(Spanned::span)),
            ("[[section.row]]", table.row.first().map(Spanned::span)),
        ];
        if let Some((key, span)) = reserved_only.into_iter().find_map(|(key, span)| Some((key, span?))) {
            let problem = format!("a general-admission section cannot have `{key}`");
            return Err(self.error(span, problem));
        }
        let Some(capacity) = &table.capacity else {
            return Err(self.error(span, "a general-admission section needs `capacity`"));
        };
        if *capacity.get_ref() == 0 {
            return Err(self.error(capacity.span(), "`capacity` must be at least 1"));
        }
        Ok(SectionKind::GeneralAdmission { capacity: *capacity.get_ref(), category })
    }

    fn seat_map(
        &self,
        span: Range<usize>,
        table: &SectionTable,
        category: CategoryIndex,
        categories: &[Category],
        seats_left: &mut usize,
    ) -> Result<SeatMap, VenueError> {
        let missing = |key: &str| self.error(span.clone(), format!("a reserved section needs `{key}`"));
        let rows = table.rows.as_ref().ok_or_else(|| missing("rows"))?;
        let seats = table.seats.as_ref().ok_or_else(|| missing("seats"))?;
        let quality_front = table.quality_front.as_ref().ok_or_else(|| missing("quality_front"))?;
        let step = |step: &Option<Spanned<u16>>| step.as_ref().map_or(0, |step| *step.get_ref());
        let quality = QualityModel {
            front: *quality_front.get_ref(),
            row_step: step(&table.quality_row_step),
            seat_step: step(&table.quality_seat_step),
        };

        let labels = self.row_labels(rows)?;
        let row_indexes: HashMap<&str, usize> =
            labels.iter().enumerate().map(|(index, label)| (&**label, index)).collect();
        let default_plan = RowPlan {
            seats: self.numbers(seats, "seats")?,
            category,
            aisle: table.aisle.as_ref().map(|aisle| self.numbers(aisle, "aisle")).transpose()?,
            accessible: Vec::new(),
            obstructed: Vec::new(),
            quality_bonus: 0,
        };
        let mut plans = vec![default_plan; labels.len()];
        for row_table in &table.row {
            let row_table = row_table.get_ref();
            self.apply_row_table(row_table, &row_indexes, &mut plans, categories)
                .map_err(|error| error.in_row(row_table.rows.get_ref()))?;
        }

        let seat_count: usize = plans.iter().map(|plan| plan.seats.list.len()).sum();
        if seat_count > *seats_left {
            let problem = format!("the venue has more than {VENUE_SEATS_MAX} reserved seats");
            return Err(self.error(span, problem));
        }
        *seats_left -= seat_count;
        self.build_seat_map(&labels, &plans, &quality, seat_count)
    }

    fn apply_row_table(
        &self,
        table: &RowTable,
        row_indexes: &HashMap<&str, usize>,
        plans: &mut [RowPlan],
        categories: &[Category],
    ) -> Result<(), VenueError> {
        let mut targets = Vec::new();
        for label in self.row_labels(&table.rows)? {
            let Some(&index) = row_indexes.get(&*label) else {
                let problem = format!("row {label} is not a row of this section");
                return Err(self.error(table.rows.span(), problem));
            };
            targets.push(index);
        }
        let numbers =
            |value: &Option<Spanned<String>>, key| value.as_ref().map(|value| self.numbers(value, key)).transpose();
        let seats = numbers(&table.seats, "seats")?;
        let aisle = numbers(&table.aisle, "aisle")?;
        let accessible = numbers(&table.accessible, "accessible")?;
        let obstructed = numbers(&table.obstructed, "obstructed")?;
        let category = table.category.as_ref().map(|id| self.category(categories, id)).transpose()?;
        for index in targets {
            let plan = &mut plans[index];
            if let Some(seats) = &seats {
                plan.seats = seats.clone();
            }
            if let Some(category) = category {
                plan.category = category;
            }
            if let Some(aisle) = &aisle {
                plan.aisle = Some(aisle.clone());
            }
            plan.accessible.extend(accessible.clone());
            plan.obstructed.extend(obstructed.clone());
            plan.quality_bonus += i64::from(table.quality_bonus.unwrap_or(0));
        }
        Ok(())
    }

    fn build_seat_map(
        &self,
        labels: &[Box<str>],
        plans: &[RowPlan],
        quality: &QualityModel,
        seat_count: usize,
    ) -> Result<SeatMap, VenueError> {
        let mut map = SeatMap { rows: Vec::with_capacity(labels.len()), seats: Vec::with_capacity(seat_count) };
        for (row_index, (label, plan)) in labels.iter().zip(plans).enumerate() {
            self.check_flag_numbers(plan).map_err(|error| error.in_row(label))?;
            let numbers = &plan.seats.list;
            let (lowest, highest) = (numbers[0], numbers[numbers.len() - 1]);
            let first_seat = map.seats.len() as u32;
            for &number in numbers {
                map.seats.push(Seat {
                    row: row_index as u16,
                    number,
                    category: plan.category,
                    flags: plan.flags(number, lowest, highest),
                    quality: quality.seat(row_index, number, lowest, highest, plan.quality_bonus),
                });
            }
            map.rows.push(Row { label: label.clone(), first_seat, seat_count: numbers.len() as u32 });
        }
        assert_eq!(map.seats.len(), seat_count);
        Ok(map)
    }

    /// Aisle, accessible and obstructed numbers must be seats of the row they flag.
    fn check_flag_numbers(&self, plan: &RowPlan) -> Result<(), VenueError> {
        let flag_sets = plan.aisle.iter().chain(&plan.accessible).chain(&plan.obstructed);
        for set in flag_sets {
            if let Some(number) = set.list.iter().find(|&&number| !plan.seats.contains(number)) {
                let problem = format!("seat {number} in `{}` is not a seat of this row", set.key);
                return Err(self.error(set.span.clone(), problem));
            }
        }
        Ok(())
    }

    fn row_labels(&self, rows: &Spanned<String>) -> Result<Vec<Box<str>>, VenueError> {
        parse_row_labels(rows.get_ref(), SECTION_ROWS_MAX)
            .map_err(|problem| self.error(rows.span(), format!("{problem} in `rows`")))
    }

    fn numbers(&self, value: &Spanned<String>, key: &'static str) -> Result<Rc<Numbers>, VenueError> {
        let list = parse_seat_numbers(value.get_ref())
            .map_err(|problem| self.error(value.span(), format!("{problem} in `{key}`")))?;
        Ok(Rc::new(Numbers { list, key, span: value.span() }))
    }
}

impl RowPlan {
    fn flags(&self, number: u16, lowest: u16, highest: u16) -> SeatFlags {
        let aisle = match &self.aisle {
            Some(aisle) => aisle.contains(number),
            None => number == lowest || number == highest,
        };
        let mut flags = SeatFlags::default();
        if aisle {
            flags = flags.with(SeatFlags::AISLE);
        }
        if self.accessible.iter().any(|set| set.contains(number)) {
            flags = flags.with(SeatFlags::ACCESSIBLE);
        }
        if self.obstructed.iter().any(|set| set.contains(number)) {
            flags = flags.with(SeatFlags::OBSTRUCTED);
        }
        flags
    }
}

/// Expands a comma-separated list of seat numbers and ranges (`"1-10,13-24"`) into
/// ascending, unique numbers in 1..=65535. A number listed twice is an error.
fn parse_seat_numbers(text: &str) -> Result<Vec<u16>, String> {
    if text.trim().is_empty() {
        return Err("no seats".to_owned());
    }
    let mut listed = vec![false; usize::from(u16::MAX) + 1];
    for item in text.split(',').map(str::trim) {
        let (start, end) = item.split_once('-').unwrap_or((item, item));
        let (start, end) = (parse_seat_number(start.trim())?, parse_seat_number(end.trim())?);
        if start > end {
            return Err(format!("empty range `{item}`"));
        }
        for number in start..=end {
            if std::mem::replace(&mut listed[usize::from(number)], true) {
                return Err(format!("seat {number} appears twice"));
            }
        }
    }
    Ok((1..=u16::MAX).filter(|&number| listed[usize::from(number)]).collect())
}

fn parse_seat_number(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("`{text}` is not a seat number"));
    }
    match text.parse::<u16>() {
        Ok(0) => Err("seat number 0 (numbers start at 1)".to_owned()),
        Ok(number) => Ok(number),
        Err(_) => Err(format!("seat number {text} is above {}", u16::MAX)),
    }
}

/// Expands a comma-separated list of row labels and ranges, in the order written:
/// `"A-T"`, `"A-AD"` (Z is followed by AA, AB, ...), `"1-30"`, `"A,B,D-F"`.
/// Labels are ASCII letters and digits; ranges run between two uppercase letter labels or
/// two numbers. At most `rows_max` labels, each listed once.
fn parse_row_labels(text: &str, rows_max: usize) -> Result<Vec<Box<str>>, String> {
    let mut labels: Vec<Box<str>> = Vec::new();
    for item in text.split(',').map(str::trim) {
        let expanded = match item.split_once('-') {
            None => vec![parse_row_label(item)?],
            Some((start, end)) => expand_row_range(item, start.trim(), end.trim(), rows_max)?,
        };
        if labels.len() + expanded.len() > rows_max {
            return Err(format!("more than {rows_max} rows"));
        }
        labels.extend(expanded);
    }
    let mut seen = std::collections::HashSet::with_capacity(labels.len());
    if let Some(twice) = labels.iter().find(|label| !seen.insert(&***label)) {
        return Err(format!("row {twice} appears twice"));
    }
    Ok(labels)
}

fn parse_row_label(text: &str) -> Result<Box<str>, String> {
    if text.is_empty() {
        return Err("an empty row label".to_owned());
    }
    if !text.bytes().all(|byte| byte.is_ascii_alphanumeric()) {
        return Err(format!("row label `{text}` is not ASCII letters and digits"));
    }
    Ok(text.into())
}

fn expand_row_range(item: &str, start: &str, end: &str, rows_max: usize) -> Result<Vec<Box<str>>, String> {
    if start.is_empty() || end.is_empty() || end.contains('-') {
        return Err(format!("`{item}`: a row label cannot contain `-`"));
    }
    let (first, last, letters) = match (letters_value(start), letters_value(end)) {
        (Some(first), Some(last)) => (first, last, true),
        _ => match (decimal_value(start), decimal_value(end)) {
            (Some(first), Some(last)) => (first, last, false),
            _ => {
                let expected = "two uppercase letter labels or two numbers";
                return Err(format!("range `{item}` must run between {expected}"));
            }
        },
    };
    if first > last {
        return Err(format!("empty range `{item}`"));
    }
    if last - first >= rows_max as u64 {
        return Err(format!("more than {rows_max} rows"));
    }
    let label = |value| {
        if letters {
            letters_label(value)
        } else {
            value.to_string()
        }
    };
    Ok((first..=last).map(|value| label(value).into_boxed_str()).collect())
}

/// Letter labels count like spreadsheet columns: A = 1, Z = 26, AA = 27, AZ = 52.
/// Longer than four letters is refused (no venue has half a million rows).
fn letters_value(label: &str) -> Option<u64> {
    if label.is_empty() || label.len() > 4 || !label.bytes().all(|byte| byte.is_ascii_uppercase()) {
        return None;
    }
    Some(label.bytes().fold(0, |value, byte| value * 26 + u64::from(byte - b'A' + 1)))
}

fn letters_label(mut value: u64) -> String {
    let mut letters = Vec::new();
    while value > 0 {
        value -= 1;
        letters.push(b'A' + (value % 26) as u8);
        value /= 26;
    }
    letters.iter().rev().map(|&byte| char::from(byte)).collect()
}

/// A row number written without sign or leading zeros, so that it reads back the same.
fn decimal_value(label: &str) -> Option<u64> {
    let canonical = label.len() <= 6
        && label.bytes().all(|byte| byte.is_ascii_digit())
        && (label == "0" || !label.starts_with('0'));
    if !canonical {
        return None;
    }
    label.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Marks the line an error must point at.
    const MARK: &str = "# <-";

    const HEADER: &str = r#"[venue]
id = "test-arena"
name = "Test Arena"

[[category]]
id = "CAT1"
name = "Category 1"

[[category]]
id = "CAT2"
name = "Category 2"

[[category]]
id = "FLOOR"
name = "Floor"
"#;

    /// Parses `text` and checks the error names `test.toml`, the line marked with
    /// [`MARK`] and contains `expected`.
    fn check_error(text: &str, expected: &str) {
        let line = text.lines().position(|line| line.contains(MARK)).map(|index| index + 1);
        let line = line.unwrap_or_else(|| panic!("no `{MARK}` in:\n{text}"));
        let message = match Venue::parse(text, "test.toml") {
            Ok(_) => panic!("expected an error containing `{expected}` for:\n{text}"),
            Err(error) => error.to_string(),
        };
        let prefix = format!("test.toml:{line}: ");
        assert!(
            message.starts_with(&prefix) && message.contains(expected),
            "expected `{prefix}...{expected}...`, got `{message}` for:\n{text}"
        );
    }

    fn with_header(body: &str) -> String {
        format!("{HEADER}\n{body}")
    }

    /// A reserved section `S1` whose remaining keys are `body`.
    fn reserved(body: &str) -> String {
        with_header(&format!("[[section]]\nid = \"S1\"\nname = \"Section 1\"\nkind = \"reserved\"\n{body}"))
    }

    /// A general-admission section `GA` whose remaining keys are `body`.
    fn general(body: &str) -> String {
        with_header(&format!("[[section]]\nid = \"GA\"\nname = \"Floor\"\nkind = \"general_admission\"\n{body}"))
    }

    /// A valid venue whose `[venue]` table has `time_zone = {value}`.
    fn with_time_zone(value: &str) -> String {
        general("category = \"FLOOR\"\ncapacity = 1\n")
            .replace("name = \"Test Arena\"\n", &format!("name = \"Test Arena\"\ntime_zone = {value}\n"))
    }

    const S1_KEYS: &str = "category = \"CAT1\"\nrows = \"A-C\"\nseats = \"1-10\"\nquality_front = 100\n";

    /// One table of refused files, one row each with the problem it must name; long
    /// because the table is.
    #[test]
    fn refusals() {
        let too_many_categories: String = (0..=VENUE_CATEGORIES_MAX)
            .map(|index| {
                let mark = if index == VENUE_CATEGORIES_MAX { MARK } else { "" };
                format!("[[category]] {mark}\nid = \"C{index}\"\nname = \"C\"\n")
            })
            .collect();
        let too_many_categories = format!(
            "[venue]\nid = \"v\"\nname = \"V\"\n{too_many_categories}{}",
            "[[section]]\nid = \"GA\"\nname = \"GA\"\nkind = \"general_admission\"\ncategory = \"C0\"\ncapacity = 1\n"
        );
        let cases: &[(String, &str)] = &[
            // TOML syntax and types.
            (reserved("category = CAT1 # <-\n"), "invalid string"),
            (reserved(&format!("{S1_KEYS}quality_row_step = -1 # <-\n")), "expected u16"),
            (reserved(&format!("{S1_KEYS}quality_row_step = 1\nquality_row_step = 2 # <-\n")), "duplicate key"),
            (reserved("kind = \"box\" # <-\n"), "duplicate key"),
            (with_header("[[section]]\nid = \"S1\"\nname = \"S\"\nkind = \"box\" # <-\n"), "unknown variant `box`"),
            // Unknown keys.
            (with_header("colour = \"red\" # <-\n"), "unknown field `colour`"),
            (reserved(&format!("{S1_KEYS}colour = \"red\" # <-\n")), "unknown field `colour`"),
            (reserved(&format!("{S1_KEYS}[[section.row]]\nrows = \"A\"\ncolour = \"red\" # <-\n")), "unknown field `colour`"),
            // Venue level.
            (general("category = \"FLOOR\"\ncapacity = 1\n").replace(HEADER, "# <-\n"), "missing `[venue]` table"),
            ("[venue] # <-\nid = \"v\"\nname = \"V\"\n".to_owned(), "venue has no `[[section]]`"),
            (format!("{HEADER}[[category]]\nid = \"CAT1\" # <-\nname = \"Again\"\n"), "category CAT1 is defined twice"),
            (too_many_categories, "more than 255 categories"),
            (with_time_zone("\"\" # <-"), "time zone \"\" must be an IANA name such as \"Europe/Berlin\""),
            (with_time_zone("\"Europe/ Berlin\" # <-"), "time zone \"Europe/ Berlin\" must be an IANA name"),
            (with_time_zone(&format!("\"{}\" # <-", "A".repeat(65))), "1-64 bytes, no whitespace"),
            (with_time_zone("2 # <-"), "invalid type: integer `2`, expected a string"),
            // Section ids.
            (format!("{}[[section]]\nid = \"S1\" # <-\nname = \"S\"\nkind = \"reserved\"\n{S1_KEYS}", reserved(S1_KEYS)), "section id S1 is used twice (first on line 18)"),
            (with_header(&format!("[[section]]\nid = \"\" # <-\nname = \"S\"\nkind = \"reserved\"\n{S1_KEYS}")), "section id `` must be non-empty without whitespace"),
            (with_header(&format!("[[section]]\nid = \"S 1\" # <-\nname = \"S\"\nkind = \"reserved\"\n{S1_KEYS}")), "section id `S 1` must be non-empty"),
            // Categories.
            (reserved("category = \"CAT9\" # <-\nrows = \"A\"\nseats = \"1\"\nquality_front = 1\n"), "section S1: unknown category `CAT9`"),
            (reserved(&format!("{S1_KEYS}[[section.row]]\nrows = \"B\"\ncategory = \"CAT9\" # <-\n")), "section S1 row B: unknown category `CAT9`"),
            (general("category = \"CAT9\" # <-\ncapacity = 10\n"), "section GA: unknown category `CAT9`"),
            // Reserved versus general admission.
            (with_header("[[section]] # <-\nid = \"S1\"\nname = \"S\"\nkind = \"reserved\"\ncategory = \"CAT1\"\nseats = \"1\"\nquality_front = 1\n"), "section S1: a reserved section needs `rows`"),
            (with_header("[[section]] # <-\nid = \"S1\"\nname = \"S\"\nkind = \"reserved\"\ncategory = \"CAT1\"\nrows = \"A\"\nquality_front = 1\n"), "a reserved section needs `seats`"),
            (with_header("[[section]] # <-\nid = \"S1\"\nname = \"S\"\nkind = \"reserved\"\ncategory = \"CAT1\"\nrows = \"A\"\nseats = \"1\"\n"), "a reserved section needs `quality_front`"),
            (reserved(&format!("{S1_KEYS}capacity = 10 # <-\n")), "a reserved section has no `capacity`"),
            (general("category = \"FLOOR\"\ncapacity = 0 # <-\n"), "section GA: `capacity` must be at least 1"),
            (general("category = \"FLOOR\"\ncapacity = -3 # <-\n"), "expected u32"),
            (with_header("[[section]] # <-\nid = \"GA\"\nname = \"F\"\nkind = \"general_admission\"\ncategory = \"FLOOR\"\n"), "a general-admission section needs `capacity`"),
            (general("category = \"FLOOR\"\ncapacity = 10\nrows = \"A\" # <-\n"), "a general-admission section cannot have `rows`"),
            (general("category = \"FLOOR\"\ncapacity = 10\nseats = \"1-10\" # <-\n"), "a general-admission section cannot have `seats`"),
            (general("category = \"FLOOR\"\ncapacity = 10\n[[section.row]] # <-\nrows = \"A\"\n"), "cannot have `[[section.row]]`"),
            // Rows.
            (reserved("category = \"CAT1\"\nrows = \"A-C,B\" # <-\nseats = \"1\"\nquality_front = 1\n"), "section S1: row B appears twice in `rows`"),
            (reserved("category = \"CAT1\"\nrows = \"1-3,2-4\" # <-\nseats = \"1\"\nquality_front = 1\n"), "row 2 appears twice in `rows`"),
            (reserved("category = \"CAT1\"\nrows = \"C-A\" # <-\nseats = \"1\"\nquality_front = 1\n"), "empty range `C-A` in `rows`"),
            (reserved("category = \"CAT1\"\nrows = \"A-B-C\" # <-\nseats = \"1\"\nquality_front = 1\n"), "`A-B-C`: a row label cannot contain `-`"),
            (reserved("category = \"CAT1\"\nrows = \"A,-B\" # <-\nseats = \"1\"\nquality_front = 1\n"), "a row label cannot contain `-`"),
            (reserved("category = \"CAT1\"\nrows = \"A-5\" # <-\nseats = \"1\"\nquality_front = 1\n"), "range `A-5` must run between two uppercase letter labels or two numbers"),
            (reserved("category = \"CAT1\"\nrows = \"A,,B\" # <-\nseats = \"1\"\nquality_front = 1\n"), "an empty row label in `rows`"),
            (reserved("category = \"CAT1\"\nrows = \"A B\" # <-\nseats = \"1\"\nquality_front = 1\n"), "row label `A B` is not ASCII letters and digits"),
            (reserved("category = \"CAT1\"\nrows = \"1-65536\" # <-\nseats = \"1\"\nquality_front = 1\n"), "more than 65535 rows in `rows`"),
            (reserved("category = \"CAT1\"\nrows = \"1-65535,A\" # <-\nseats = \"1\"\nquality_front = 1\n"), "more than 65535 rows in `rows`"),
            (reserved(&format!("{S1_KEYS}[[section.row]]\nrows = \"D\" # <-\nseats = \"1-5\"\n")), "section S1 row D: row D is not a row of this section"),
            (reserved(&format!("{S1_KEYS}[[section.row]]\nrows = \"A,A\" # <-\nseats = \"1-5\"\n")), "section S1 row A,A: row A appears twice in `rows`"),
            // Seats.
            (reserved("category = \"CAT1\"\nrows = \"A\"\nseats = \"1-10,5\" # <-\nquality_front = 1\n"), "section S1: seat 5 appears twice in `seats`"),
            (reserved(&format!("{S1_KEYS}[[section.row]]\nrows = \"C\"\nseats = \"1-12,12\" # <-\n")), "section S1 row C: seat 12 appears twice in `seats`"),
            (reserved("category = \"CAT1\"\nrows = \"A\"\nseats = \"\" # <-\nquality_front = 1\n"), "section S1: no seats in `seats`"),
            (reserved(&format!("{S1_KEYS}[[section.row]]\nrows = \"B\"\nseats = \" \" # <-\n")), "section S1 row B: no seats in `seats`"),
            (reserved("category = \"CAT1\"\nrows = \"A\"\nseats = \"10-1\" # <-\nquality_front = 1\n"), "empty range `10-1` in `seats`"),
            (reserved("category = \"CAT1\"\nrows = \"A\"\nseats = \"0-4\" # <-\nquality_front = 1\n"), "seat number 0 (numbers start at 1) in `seats`"),
            (reserved("category = \"CAT1\"\nrows = \"A\"\nseats = \"65530-65536\" # <-\nquality_front = 1\n"), "seat number 65536 is above 65535 in `seats`"),
            (reserved("category = \"CAT1\"\nrows = \"A\"\nseats = \"1-+4\" # <-\nquality_front = 1\n"), "`+4` is not a seat number in `seats`"),
            (reserved("category = \"CAT1\"\nrows = \"A\"\nseats = \"1,,4\" # <-\nquality_front = 1\n"), "`` is not a seat number in `seats`"),
            // Flags must name seats of the row.
            (reserved(&format!("{S1_KEYS}[[section.row]]\nrows = \"A-B\"\naccessible = \"9-11\" # <-\n")), "section S1 row A: seat 11 in `accessible` is not a seat of this row"),
            (reserved(&format!("{S1_KEYS}[[section.row]]\nrows = \"C\"\nobstructed = \"0\" # <-\n")), "seat number 0 (numbers start at 1) in `obstructed`"),
            (reserved(&format!("{S1_KEYS}[[section.row]]\nrows = \"C\"\nobstructed = \"4,12\" # <-\n")), "section S1 row C: seat 12 in `obstructed` is not a seat of this row"),
            (reserved("category = \"CAT1\"\nrows = \"A-C\"\nseats = \"1-10\"\naisle = \"1,5,10\" # <-\nquality_front = 1\n[[section.row]]\nrows = \"C\"\nseats = \"1-8\"\n"), "section S1 row C: seat 10 in `aisle` is not a seat of this row"),
            (reserved(&format!("{S1_KEYS}[[section.row]]\nrows = \"B\"\nseats = \"2-6\"\n[[section.row]]\nrows = \"B\"\naccessible = \"1-2\" # <-\n")), "section S1 row B: seat 1 in `accessible` is not a seat of this row"),
        ];
        for (text, expected) in cases {
            check_error(text, expected);
        }
    }

    #[test]
    fn time_zone_is_kept_as_written_or_defaults_to_utc() {
        assert_eq!(parse(&with_time_zone("\"Asia/Tokyo\"")).time_zone, "Asia/Tokyo");
        assert_eq!(parse(&general("category = \"FLOOR\"\ncapacity = 1\n")).time_zone, "UTC");
    }

    #[test]
    fn error_display_names_file_line_section_and_row() {
        let error = VenueError {
            file: "config/venues/x.toml".to_owned(),
            line: Some(42),
            section: Some("S101".to_owned()),
            row: Some("C".to_owned()),
            problem: "seat 12 appears twice in `seats`".to_owned(),
        };
        assert_eq!(error.to_string(), "config/venues/x.toml:42: section S101 row C: seat 12 appears twice in `seats`");
        let missing = Venue::load(Path::new("/nonexistent/venue.toml")).unwrap_err();
        assert_eq!(missing.line, None);
        assert!(missing.to_string().starts_with("/nonexistent/venue.toml: cannot open: "), "{missing}");
    }

    fn parse(text: &str) -> Venue {
        Venue::parse(text, "test.toml").unwrap_or_else(|error| panic!("{error}"))
    }

    fn seat_map<'a>(venue: &'a Venue, section: &str) -> &'a SeatMap {
        let index = venue.section_index(section).expect("section");
        venue.sections[index].seat_map().expect("reserved section")
    }

    /// `(number, category, flags, quality)` of each seat of `row`.
    fn row_seats(map: &SeatMap, row: &str) -> Vec<(u16, u8, u8, u16)> {
        let row = &map.rows[map.row_index(row).expect("row")];
        let range = map.row_seats(row);
        map.seats[range.start as usize..range.end as usize]
            .iter()
            .map(|seat| (seat.number, seat.category.0, seat.flags.0, seat.quality))
            .collect()
    }

    #[test]
    fn quality_falls_with_rows_and_distance_from_centre() {
        let venue = parse(&reserved(
            "category = \"CAT1\"\nrows = \"A-C\"\nseats = \"1-4\"\nquality_front = 1000\nquality_row_step = 10\nquality_seat_step = 4\n\
             [[section.row]]\nrows = \"C\"\nseats = \"1-3\"\nquality_bonus = -5\n",
        ));
        let map = seat_map(&venue, "S1");
        let (aisle, none) = (SeatFlags::AISLE.0, 0);
        // Centre 2.5: seats 2 and 3 are half a seat off, 1 and 4 one and a half.
        assert_eq!(row_seats(map, "A"), [(1, 0, aisle, 994), (2, 0, none, 998), (3, 0, none, 998), (4, 0, aisle, 994)]);
        assert_eq!(row_seats(map, "B"), [(1, 0, aisle, 984), (2, 0, none, 988), (3, 0, none, 988), (4, 0, aisle, 984)]);
        // Centre 2: the -5 bonus applies on top of the second row step.
        assert_eq!(row_seats(map, "C"), [(1, 0, aisle, 971), (2, 0, none, 975), (3, 0, aisle, 971)]);

        let model = QualityModel { front: 100, row_step: 60, seat_step: 1000 };
        assert_eq!(model.seat(0, 1, 1, 1, 0), 100);
        assert_eq!(model.seat(2, 1, 1, 1, 0), 0, "clamped at 0");
        assert_eq!(model.seat(0, 1, 1, 3, 0), 0, "clamped at 0");
        assert_eq!(model.seat(0, 1, 1, 1, 100_000), u16::MAX, "clamped at u16::MAX");
    }

    #[test]
    fn overrides_apply_to_the_rows_they_name() {
        let venue = parse(&reserved(
            "category = \"CAT1\"\nrows = \"A-D\"\nseats = \"1-6\"\nquality_front = 100\n\
             [[section.row]]\nrows = \"A\"\nseats = \"2-5\"\ncategory = \"CAT2\"\naccessible = \"2-3\"\n\
             [[section.row]]\nrows = \"A,C\"\nobstructed = \"5\"\nquality_bonus = 7\n\
             [[section.row]]\nrows = \"C-D\"\naisle = \"3\"\naccessible = \"1\"\nquality_bonus = 1\n",
        ));
        let map = seat_map(&venue, "S1");
        let (aisle, accessible, obstructed) = (SeatFlags::AISLE.0, SeatFlags::ACCESSIBLE.0, SeatFlags::OBSTRUCTED.0);
        let numbers_and_flags =
            |row| row_seats(map, row).iter().map(|&(number, _, flags, _)| (number, flags)).collect::<Vec<_>>();
        assert_eq!(numbers_and_flags("A"), [(2, aisle | accessible), (3, accessible), (4, 0), (5, aisle | obstructed)]);
        assert!(row_seats(map, "A").iter().all(|&(_, category, _, quality)| category == 1 && quality == 107));
        assert_eq!(numbers_and_flags("B"), [(1, aisle), (2, 0), (3, 0), (4, 0), (5, 0), (6, aisle)]);
        assert!(row_seats(map, "B").iter().all(|&(_, category, _, _)| category == 0));
        assert_eq!(numbers_and_flags("C"), [(1, accessible), (2, 0), (3, aisle), (4, 0), (5, obstructed), (6, 0)]);
        assert!(row_seats(map, "C").iter().all(|&(_, _, _, quality)| quality == 108));
        assert_eq!(numbers_and_flags("D"), [(1, accessible), (2, 0), (3, aisle), (4, 0), (5, 0), (6, 0)]);
    }

    #[test]
    fn seats_are_found_by_row_and_number() {
        let venue = parse(&reserved(
            "category = \"CAT1\"\nrows = \"A-B\"\nseats = \"1-10,13-24\"\naisle = \"1,10,13,24\"\nquality_front = 100\n",
        ));
        let map = seat_map(&venue, "S1");
        assert_eq!(map.seats.len(), 44);
        assert_eq!(map.seat_index("A", 1), Some(0));
        assert_eq!(map.seat_index("A", 13), Some(10));
        assert_eq!(map.seat_index("A", 11), None);
        assert_eq!(map.seat_index("B", 1), Some(22));
        assert_eq!(map.seat_index("C", 1), None);
        let index = map.seat_index("B", 24).expect("B-24");
        assert_eq!(map.seat_id("S1", index).0, "S1-B-24");
        let flagged: Vec<u16> = row_seats(map, "B")
            .iter()
            .filter(|&&(_, _, flags, _)| flags == SeatFlags::AISLE.0)
            .map(|&(number, ..)| number)
            .collect();
        assert_eq!(flagged, [1, 10, 13, 24]);
        assert!(map.adjacent(index - 1, index));
    }

    #[test]
    fn general_admission_sections() {
        let venue = parse(&general("category = \"FLOOR\"\ncapacity = 5000\n"));
        assert_eq!(venue.id, "test-arena");
        assert_eq!(venue.categories.len(), 3);
        assert!(matches!(
            venue.sections[0].kind,
            SectionKind::GeneralAdmission { capacity: 5000, category: CategoryIndex(2) }
        ));
        assert_eq!(venue.capacity(), 5000);
    }

    #[test]
    fn row_label_ranges() {
        let check = |text: &str, expected: &[&str]| {
            let labels = parse_row_labels(text, SECTION_ROWS_MAX).unwrap();
            let labels: Vec<&str> = labels.iter().map(|label| &**label).collect();
            assert_eq!(labels, expected, "{text}");
        };
        check("A-D", &["A", "B", "C", "D"]);
        check("Y-AB", &["Y", "Z", "AA", "AB"]);
        check("AZ-BA", &["AZ", "BA"]);
        check("ZY-AAB", &["ZY", "ZZ", "AAA", "AAB"]);
        check("8-11", &["8", "9", "10", "11"]);
        check("C, A ,1-2,b", &["C", "A", "1", "2", "b"]);
        let a_to_ad = parse_row_labels("A-AD", SECTION_ROWS_MAX).unwrap();
        assert_eq!(a_to_ad.len(), 30);
        assert_eq!((&*a_to_ad[25], &*a_to_ad[26], &*a_to_ad[29]), ("Z", "AA", "AD"));
        for value in 1..=20_000 {
            assert_eq!(letters_value(&letters_label(value)), Some(value));
        }
        assert_eq!(
            parse_row_labels("01-03", SECTION_ROWS_MAX).unwrap_err(),
            "range `01-03` must run between two uppercase letter labels or two numbers"
        );
        assert_eq!(
            parse_row_labels("a-c", SECTION_ROWS_MAX).unwrap_err(),
            "range `a-c` must run between two uppercase letter labels or two numbers"
        );
    }

    #[test]
    fn seat_number_lists() {
        assert_eq!(parse_seat_numbers("13-15, 1-2 ,7").unwrap(), [1, 2, 7, 13, 14, 15]);
        assert_eq!(parse_seat_numbers("65535").unwrap(), [65535]);
        assert_eq!(parse_seat_numbers("1-65535").unwrap().len(), 65535);
        assert_eq!(
            parse_seat_numbers("99999999999999999999").unwrap_err(),
            "seat number 99999999999999999999 is above 65535"
        );
    }
}
