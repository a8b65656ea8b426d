//! An event's start as its audience reads it: in the venue's time zone (daylight saving
//! included) and the event's language, e.g. `2027年7月10日(土) 17:30 開演` or
//! `Saturday 10 July 2027, 17:30 (JST)`. Used by the emails and, through the API, by the
//! printable ticket page (which printed a raw UTC timestamp before).
//!
//! Why jiff: one pure-Rust crate with the IANA database bundled (`tzdb-bundle-always`), so
//! servers need no system zoneinfo and every machine formats alike; no build script or proc
//! macro (chrono-tz generates its tables in a build script). The month and weekday words are
//! ours: jiff formats no locale, and two languages need two small tables, not ICU.

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::language::Language;

/// A venue's IANA time zone, checked against the bundled database when configured.
#[derive(Clone, Debug)]
pub struct VenueTimeZone {
    name: String,
    zone: TimeZone,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {name:?}: give an IANA name such as \"Asia/Tokyo\"")]
pub struct TimeZoneError {
    pub name: String,
}

impl VenueTimeZone {
    pub fn parse(name: &str) -> Result<VenueTimeZone, TimeZoneError> {
        // `TimeZone::get` would also accept "UTC"-like names; any IANA name is fine here.
        let zone = TimeZone::get(name).map_err(|_| TimeZoneError { name: name.to_string() })?;
        Ok(VenueTimeZone { name: name.to_string(), zone })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The start of an event (`starts_at_ms`: milliseconds since the Unix epoch, UTC, the
/// engine's `Millis`) in the venue's time zone and the event's language. Japanese omits the
/// zone for Japan's own time and names it otherwise (`（現地時間 EDT）`); English always
/// names it. An instant out of range (beyond the year 9999) is printed as its raw
/// milliseconds rather than failing an email.
pub fn format_starts_at(starts_at_ms: u64, zone: &VenueTimeZone, language: Language) -> String {
    let Some(instant) = i64::try_from(starts_at_ms).ok().and_then(|ms| Timestamp::from_millisecond(ms).ok()) else {
        return format!("{starts_at_ms} ms UTC");
    };
    let local = instant.to_zoned_datetime(zone.zone.clone());
    let abbreviation = zone_label(&zone.zone, instant);
    let (year, month, day) = (local.year(), local.month(), local.day());
    let (hour, minute) = (local.hour(), local.minute());
    match language {
        Language::Ja => {
            let weekday = weekday_ja(local.weekday());
            let zone_note =
                if abbreviation == "JST" { String::new() } else { format!("（現地時間 {abbreviation}）") };
            format!("{year}年{month}月{day}日({weekday}) {hour:02}:{minute:02} 開演{zone_note}")
        }
        Language::En => {
            let weekday = weekday_en(local.weekday());
            let month = MONTHS_EN[usize::from(month.unsigned_abs()).saturating_sub(1) % 12];
            format!("{weekday} {day} {month} {year}, {hour:02}:{minute:02} ({abbreviation})")
        }
    }
}

/// The zone's abbreviation at that instant (`JST`, `EDT`, `EST`); zones without a letter
/// abbreviation have a numeric one in the database (`-03`), shown as `UTC-03`.
fn zone_label(zone: &TimeZone, instant: Timestamp) -> String {
    let info = zone.to_offset_info(instant);
    let abbreviation = info.abbreviation();
    if abbreviation.starts_with(['+', '-']) {
        format!("UTC{abbreviation}")
    } else {
        abbreviation.to_string()
    }
}

const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn weekday_en(weekday: Weekday) -> &'static str {
    match weekday {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

fn weekday_ja(weekday: Weekday) -> &'static str {
    match weekday {
        Weekday::Monday => "月",
        Weekday::Tuesday => "火",
        Weekday::Wednesday => "水",
        Weekday::Thursday => "木",
        Weekday::Friday => "金",
        Weekday::Saturday => "土",
        Weekday::Sunday => "日",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds of a UTC instant written as RFC 3339.
    fn ms(rfc3339: &str) -> u64 {
        let instant: Timestamp = rfc3339.parse().expect("test instant");
        u64::try_from(instant.as_millisecond()).expect("after 1970")
    }

    fn check(utc: &str, zone: &str, language: Language, expected: &str) {
        let zone = VenueTimeZone::parse(zone).expect("test zone");
        assert_eq!(format_starts_at(ms(utc), &zone, language), expected, "{utc} in {} ({language})", zone.name());
    }

    #[test]
    fn tokyo_in_both_languages() {
        // 08:30 UTC is 17:30 in Tokyo (UTC+9, no daylight saving).
        check("2027-07-10T08:30:00Z", "Asia/Tokyo", Language::Ja, "2027年7月10日(土) 17:30 開演");
        check("2027-07-10T08:30:00Z", "Asia/Tokyo", Language::En, "Saturday 10 July 2027, 17:30 (JST)");
        // The local date is not the UTC date: 23:00 UTC on the 9th is the 10th in Tokyo.
        check("2027-07-09T23:00:00Z", "Asia/Tokyo", Language::En, "Saturday 10 July 2027, 08:00 (JST)");
    }

    #[test]
    fn new_york_across_its_daylight_saving_change() {
        // 2027: EST (UTC-5) until 14 March 02:00, then EDT (UTC-4).
        check("2027-03-14T01:30:00Z", "America/New_York", Language::En, "Saturday 13 March 2027, 20:30 (EST)");
        check("2027-03-15T00:30:00Z", "America/New_York", Language::En, "Sunday 14 March 2027, 20:30 (EDT)");
        check("2027-03-15T00:30:00Z", "America/New_York", Language::Ja, "2027年3月14日(日) 20:30 開演（現地時間 EDT）");
        // Back to EST on 7 November 2027 (02:00 EDT becomes 01:00 EST).
        check("2027-11-08T01:30:00Z", "America/New_York", Language::En, "Sunday 7 November 2027, 20:30 (EST)");
    }

    #[test]
    fn numeric_abbreviations_and_out_of_range_instants() {
        check("2027-07-10T20:00:00Z", "America/Sao_Paulo", Language::En, "Saturday 10 July 2027, 17:00 (UTC-03)");
        let zone = VenueTimeZone::parse("Asia/Tokyo").expect("zone");
        assert_eq!(format_starts_at(u64::MAX, &zone, Language::En), format!("{} ms UTC", u64::MAX));
    }

    #[test]
    fn unknown_zones_are_refused() {
        assert_eq!(
            VenueTimeZone::parse("Mars/Olympus_Mons").map(|zone| zone.name().to_string()),
            Err(TimeZoneError { name: "Mars/Olympus_Mons".to_string() })
        );
    }
}
