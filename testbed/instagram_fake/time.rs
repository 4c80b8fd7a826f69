//! Timestamps as Unix seconds, written in the Graph API format
//! `2016-01-02T03:04:05+0000`. The conversions use the proleptic Gregorian
//! calendar, so no date crate is needed.

use std::time::{SystemTime, UNIX_EPOCH};

/// First and last year accepted, which keeps every timestamp four digits
/// long and the arithmetic far from overflow.
const MIN_YEAR: i64 = 1970;
const MAX_YEAR: i64 = 9999;

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Returns the current time in Unix seconds.
pub fn now() -> i64 {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH);
    elapsed.map_or(0, |elapsed| {
        i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
    })
}

/// Formats Unix seconds as `2016-01-02T03:04:05+0000`.
pub fn format(seconds: i64) -> String {
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let second_of_day = seconds.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+0000",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// Formats Unix seconds as `Friday, 11-Sep-20 06:41:31 UTC`, the layout of
/// the dates in Meta's "Session has expired" message.
pub fn format_session_date(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday, index 4 of WEEKDAYS.
    let weekday = WEEKDAYS[usize::try_from((days + 4).rem_euclid(7)).expect("0 to 6")];
    let month_name = MONTHS[usize::try_from(month - 1).expect("1 to 12")];
    let second_of_day = seconds.rem_euclid(86_400);
    format!(
        "{weekday}, {day:02}-{month_name}-{:02} {:02}:{:02}:{:02} UTC",
        year % 100,
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS` followed by `Z`, `±HHMM` or `±HH:MM` into
/// Unix seconds.
pub fn parse(text: &str) -> Result<i64, String> {
    let invalid = |reason: &str| {
        format!(
            "invalid timestamp {text:?} ({reason}): expected a form like 2016-01-02T03:04:05+0000"
        )
    };
    if !text.is_ascii() {
        return Err(invalid("not ASCII"));
    }
    if text.len() < 20 {
        return Err(invalid("too short"));
    }

    let (date_time, zone) = text.split_at(19);
    let bytes = date_time.as_bytes();
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, byte)| bytes[at] != byte) {
        return Err(invalid("misplaced separator"));
    }
    let number = |range: std::ops::Range<usize>| {
        let digits = &date_time[range];
        if digits.bytes().all(|byte| byte.is_ascii_digit()) {
            digits.parse::<i64>().map_err(|_| invalid("not a number"))
        } else {
            Err(invalid("not a number"))
        }
    };

    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
        return Err(invalid("year out of range 1970 to 9999"));
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(invalid("no such date"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(invalid("no such time of day"));
    }

    let offset = parse_offset(zone).ok_or_else(|| invalid("invalid time zone offset"))?;
    let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Ok(local - offset)
}

/// Parses `Z`, `±HHMM` or `±HH:MM` into seconds east of UTC.
fn parse_offset(zone: &str) -> Option<i64> {
    if zone == "Z" {
        return Some(0);
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    let well_formed = matches!(zone.len(), 5 | 6)
        && digits.len() == 4
        && digits.bytes().all(|byte| byte.is_ascii_digit());
    if !well_formed {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = digits[2..].parse().ok()?;
    (hours < 24 && minutes < 60).then_some(sign * (hours * 3600 + minutes * 60))
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Returns the days since 1970-01-01 of a Gregorian date. The year is
/// counted from March so that the leap day falls at the end of it.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Inverts `days_from_civil`: returns the year, month and day.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
