//! The time arguments of `--reset-offsets`: `--to-datetime` (Kafka's
//! `Utils.getDateTime`: `YYYY-MM-DDTHH:mm:SS.sss` with an optional zone `Z`, `±hh`,
//! `±hhmm` or `±hh:mm`, UTC when none is given) and `--by-duration` (Java's
//! `Duration.parse`: `PnDTnHnMn.nS`, signs allowed on the whole and on each part).
//! Pure functions; results are milliseconds.

const MS_PER_SECOND: i64 = 1_000;
const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

/// Milliseconds since the epoch of `text`, or why it is not a date-time Kafka accepts.
pub fn parse_datetime(text: &str) -> Result<i64, String> {
    let unparseable = || {
        format!(
            "Unparseable date: \"{text}\" (expected YYYY-MM-DDTHH:mm:SS.sss, optionally \
             followed by Z, +hh:mm or -hh:mm; UTC if no zone is given)"
        )
    };
    let (date, rest) = text.split_once('T').ok_or_else(|| {
        format!("Error parsing timestamp \"{text}\": it does not contain a 'T' according to ISO8601 format")
    })?;
    let zone_at = rest.find(['+', '-', 'Z']).unwrap_or(rest.len());
    let (time, zone) = rest.split_at(zone_at);

    let mut date_parts = date.split('-');
    let year = number(date_parts.next(), 1, 4).ok_or_else(unparseable)?;
    let month = number(date_parts.next(), 1, 2).ok_or_else(unparseable)?;
    let day = number(date_parts.next(), 1, 2).ok_or_else(unparseable)?;
    if date_parts.next().is_some() {
        return Err(unparseable());
    }
    let (clock, millis) = time.split_once('.').ok_or_else(unparseable)?;
    let mut clock_parts = clock.split(':');
    let hour = number(clock_parts.next(), 1, 2).ok_or_else(unparseable)?;
    let minute = number(clock_parts.next(), 1, 2).ok_or_else(unparseable)?;
    let second = number(clock_parts.next(), 1, 2).ok_or_else(unparseable)?;
    if clock_parts.next().is_some() {
        return Err(unparseable());
    }
    let millis = number(Some(millis), 1, 3).ok_or_else(unparseable)?;
    let valid = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60;
    if !valid {
        return Err(unparseable());
    }
    let offset_minutes = parse_zone(zone).ok_or_else(unparseable)?;
    Ok(days_from_civil(year, month, day) * MS_PER_DAY
        + hour * MS_PER_HOUR
        + minute * MS_PER_MINUTE
        + second * MS_PER_SECOND
        + millis
        - offset_minutes * MS_PER_MINUTE)
}

/// A run of `min..=max` ASCII digits.
fn number(text: Option<&str>, min: usize, max: usize) -> Option<i64> {
    let text = text?;
    if !(min..=max).contains(&text.len()) || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Minutes east of UTC: "" and "Z" are 0; `±hh`, `±hhmm`, `±hh:mm`.
fn parse_zone(zone: &str) -> Option<i64> {
    if zone.is_empty() || zone == "Z" {
        return Some(0);
    }
    let (sign, digits) = match zone.as_bytes()[0] {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let (hours, minutes) = match digits.len() {
        2 => (number(Some(digits), 2, 2)?, 0),
        4 => (
            number(Some(&digits[..2]), 2, 2)?,
            number(Some(&digits[2..]), 2, 2)?,
        ),
        5 if digits.as_bytes()[2] == b':' => (
            number(Some(&digits[..2]), 2, 2)?,
            number(Some(&digits[3..]), 2, 2)?,
        ),
        _ => return None,
    };
    (hours <= 23 && minutes <= 59).then_some(sign * (hours * 60 + minutes))
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Milliseconds of an ISO-8601 duration as Java's `Duration.parse` reads it
/// (`P1DT2H`, `PT15M`, `-PT1.5S`, `P-2D`); nanoseconds below a millisecond are dropped.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let invalid = || {
        format!(
            "Text cannot be parsed to a Duration: \"{text}\" (expected PnDTnHnMn.nS, for example PT1H30M or P1D)"
        )
    };
    let upper = text.to_ascii_uppercase();
    let (negate, rest) = match upper.as_bytes().first() {
        Some(b'-') => (true, &upper[1..]),
        Some(b'+') => (false, &upper[1..]),
        _ => (false, upper.as_str()),
    };
    let mut rest = rest.strip_prefix('P').ok_or_else(invalid)?;
    let mut total: i64 = 0;
    let mut parts = 0;
    let add = |total: i64, amount: i64, unit_ms: i64| -> Option<i64> {
        total.checked_add(amount.checked_mul(unit_ms)?)
    };
    if let Some((amount, after)) = signed_number(rest)
        && let Some(after) = after.strip_prefix('D')
    {
        total = add(total, amount, MS_PER_DAY).ok_or_else(invalid)?;
        parts += 1;
        rest = after;
    }
    if let Some(after) = rest.strip_prefix('T') {
        rest = after;
        let mut time_parts = 0;
        for (unit, unit_ms) in [('H', MS_PER_HOUR), ('M', MS_PER_MINUTE)] {
            if let Some((amount, after)) = signed_number(rest)
                && let Some(after) = after.strip_prefix(unit)
            {
                total = add(total, amount, unit_ms).ok_or_else(invalid)?;
                time_parts += 1;
                rest = after;
            }
        }
        if let Some((seconds, after)) = signed_number(rest) {
            let negative_seconds = rest.starts_with('-');
            let (fraction, after) = match after.strip_prefix(['.', ',']) {
                Some(after) => {
                    let digits = after.bytes().take_while(u8::is_ascii_digit).count();
                    if digits > 9 {
                        return Err(invalid());
                    }
                    (&after[..digits], &after[digits..])
                }
                None => ("", after),
            };
            let after = after.strip_prefix('S').ok_or_else(invalid)?;
            let millis: i64 = format!("{:0<3}", &fraction[..fraction.len().min(3)])
                .parse()
                .map_err(|_| invalid())?;
            let millis = if negative_seconds { -millis } else { millis };
            total = add(total, seconds, MS_PER_SECOND)
                .and_then(|total| total.checked_add(millis))
                .ok_or_else(invalid)?;
            time_parts += 1;
            rest = after;
        }
        if time_parts == 0 {
            return Err(invalid());
        }
        parts += time_parts;
    }
    if parts == 0 || !rest.is_empty() {
        return Err(invalid());
    }
    Ok(if negate { -total } else { total })
}

/// A leading `[+-]digits`, and what follows it.
fn signed_number(text: &str) -> Option<(i64, &str)> {
    let sign_bytes = usize::from(text.starts_with(['+', '-']));
    let digits = text[sign_bytes..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    if digits == 0 {
        return None;
    }
    let end = sign_bytes + digits;
    Some((text[..end].parse().ok()?, &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_without_a_zone_are_utc() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000"), Ok(0));
        assert_eq!(
            parse_datetime("2023-11-14T22:13:20.000"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_datetime("2023-11-14T22:13:20.000Z"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_datetime("2024-02-29T12:00:00.5"),
            Ok(1_709_208_000_005)
        );
    }

    #[test]
    fn datetime_zones_shift_to_utc() {
        let utc = parse_datetime("2023-11-14T22:13:20.000").expect("valid");
        assert_eq!(parse_datetime("2023-11-15T00:13:20.000+02:00"), Ok(utc));
        assert_eq!(parse_datetime("2023-11-15T00:13:20.000+0200"), Ok(utc));
        assert_eq!(parse_datetime("2023-11-15T00:13:20.000+02"), Ok(utc));
        assert_eq!(parse_datetime("2023-11-14T17:13:20.000-05:00"), Ok(utc));
    }

    #[test]
    fn malformed_or_impossible_datetimes_are_refused() {
        for text in [
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-13-01T00:00:00.000",
            "2023-02-29T00:00:00.000",
            "2023-11-14T24:00:00.000",
            "2023-11-14T22:13:20.0000",
            "2023-11-14T22:13:20.000+2",
            "2023-11-14T22:13:20.000X",
        ] {
            assert!(parse_datetime(text).is_err(), "{text}");
        }
        assert!(
            parse_datetime("2023-11-14")
                .expect_err("no T")
                .contains("does not contain a 'T'")
        );
    }

    #[test]
    fn durations_read_like_java_duration_parse() {
        assert_eq!(parse_duration("PT0S"), Ok(0));
        assert_eq!(parse_duration("PT15M"), Ok(15 * MS_PER_MINUTE));
        assert_eq!(
            parse_duration("P1DT2H3M4.5S"),
            Ok(MS_PER_DAY + 2 * MS_PER_HOUR + 3 * MS_PER_MINUTE + 4_500)
        );
        assert_eq!(parse_duration("p2d"), Ok(2 * MS_PER_DAY));
        assert_eq!(parse_duration("-PT1H"), Ok(-MS_PER_HOUR));
        assert_eq!(parse_duration("PT-1.5S"), Ok(-1_500));
        assert_eq!(parse_duration("P-1DT1H"), Ok(-MS_PER_DAY + MS_PER_HOUR));
        assert_eq!(parse_duration("PT0.0001S"), Ok(0));
    }

    #[test]
    fn malformed_durations_are_refused() {
        for text in [
            "",
            "P",
            "PT",
            "1D",
            "P1H",
            "PT1D",
            "P1DT",
            "PT1M1H",
            "PT1.S1",
            "PT1.0000000001S",
            "P99999999999999999D",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?}");
        }
    }
}
