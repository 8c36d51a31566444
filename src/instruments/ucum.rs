//! A validator for the UCUM case-sensitive unit syntax OTel asks instrument units to follow.
//!
//! Written here rather than taken from a crate: the UCUM crates on crates.io convert quantities and
//! pull in large unit tables; definition-time validation needs only the grammar plus the atoms and
//! prefixes in use for telemetry. The grammar follows UCUM §2 (terms joined by `.` and `/`,
//! exponents, `{annotations}`, parentheses, integer factors). Atoms outside the table below are
//! rejected with a message naming them; wrap free text in braces (`{request}`) instead.

/// Atoms that take metric prefixes (`ms`, `kBy`, `MiBy`, `GHz`, ...).
const METRIC_ATOMS: &[&str] = &[
    "m", "s", "g", "rad", "K", "C", "cd", "mol", "sr", "Hz", "N", "Pa", "J", "W", "A", "V", "F",
    "Ohm", "S", "Wb", "Cel", "T", "H", "lm", "lx", "Bq", "Gy", "Sv", "l", "L", "t", "bar", "eV",
    "By", "bit", "Bd", "B", "Np",
];
/// Atoms that take no prefix.
/// `rpm` is not UCUM, but the hardware semantic conventions use it for `hw.fan.speed`.
const PLAIN_ATOMS: &[&str] = &[
    "min", "h", "d", "wk", "mo", "a", "%", "deg", "[ppm]", "[ppb]", "rpm",
];
/// Decimal and binary prefixes.
const PREFIXES: &[&str] = &[
    "Y", "Z", "E", "P", "T", "G", "M", "k", "h", "da", "d", "c", "m", "u", "n", "p", "f", "a", "z",
    "y", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
];

/// Checks `unit` against the UCUM grammar. `Err` explains the first problem found.
pub(crate) fn validate(unit: &str) -> Result<(), String> {
    if unit.is_empty() {
        return Ok(());
    }
    if unit.len() > 63 {
        return Err(format!(
            "is {} characters long; the limit is 63",
            unit.len()
        ));
    }
    if let Some(c) = unit
        .chars()
        .find(|c| !c.is_ascii() || c.is_ascii_control() || *c == ' ')
    {
        return Err(format!(
            "contains {c:?}; units are printable ASCII without spaces"
        ));
    }
    let mut p = Parser {
        s: unit.as_bytes(),
        i: 0,
    };
    if p.peek() == Some(b'/') {
        p.i += 1;
    }
    p.term()?;
    if p.i != p.s.len() {
        return Err(format!(
            "unexpected {:?} at position {}",
            p.s[p.i] as char,
            p.i + 1
        ));
    }
    Ok(())
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn term(&mut self) -> Result<(), String> {
        self.component()?;
        while let Some(b'.' | b'/') = self.peek() {
            self.i += 1;
            self.component()?;
        }
        Ok(())
    }

    fn component(&mut self) -> Result<(), String> {
        match self.peek() {
            None => Err("ends where a unit was expected".into()),
            Some(b'{') => self.annotation(),
            Some(b'(') => {
                self.i += 1;
                self.term()?;
                if self.peek() != Some(b')') {
                    return Err("has an unclosed parenthesis".into());
                }
                self.i += 1;
                Ok(())
            }
            Some(c) if c.is_ascii_digit() => {
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.i += 1;
                }
                Ok(())
            }
            Some(_) => {
                let start = self.i;
                while let Some(c) = self.peek() {
                    if c.is_ascii_alphabetic() || c == b'%' || c == b'[' || c == b']' {
                        self.i += 1;
                    } else {
                        break;
                    }
                }
                let atom = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
                if atom.is_empty() {
                    return Err(format!(
                        "unexpected {:?} at position {}",
                        self.s[start] as char,
                        start + 1
                    ));
                }
                if !is_simple_unit(atom) {
                    return Err(format!(
                        "uses {atom:?}, which is not a UCUM unit genscope knows; \
                         write free text as an annotation such as {{{atom}}}"
                    ));
                }
                if let Some(b'+' | b'-') = self.peek() {
                    self.i += 1;
                }
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.i += 1;
                }
                if self.peek() == Some(b'{') {
                    self.annotation()?;
                }
                Ok(())
            }
        }
    }

    fn annotation(&mut self) -> Result<(), String> {
        let start = self.i;
        self.i += 1;
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'}' => return Ok(()),
                b'{' => return Err("nests braces in an annotation".into()),
                _ => {}
            }
        }
        Err(format!(
            "has an unclosed annotation at position {}",
            start + 1
        ))
    }
}

fn is_simple_unit(atom: &str) -> bool {
    if METRIC_ATOMS.contains(&atom) || PLAIN_ATOMS.contains(&atom) {
        return true;
    }
    PREFIXES.iter().any(|p| {
        atom.strip_prefix(p)
            .is_some_and(|rest| METRIC_ATOMS.contains(&rest))
    })
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_the_units_telemetry_uses() {
        for unit in [
            "",
            "1",
            "s",
            "ms",
            "By",
            "KiBy",
            "MiBy",
            "By/s",
            "{request}",
            "{token}",
            "{step}/s",
            "Cel",
            "W",
            "J",
            "Hz",
            "MHz",
            "%",
            "{cpu}",
            "1/s",
            "/s",
            "m2",
            "kg.m/s2",
            "(By/s)",
            "{packet}",
            "rpm{fan}",
            "h",
            "min",
        ] {
            assert_eq!(validate(unit), Ok(()), "{unit}");
        }
    }

    #[test]
    fn rejects_what_is_not_ucum() {
        for (unit, why) in [
            ("seconds", "seconds"),
            ("bytes", "bytes"),
            ("req/s", "req"),
            ("{open", "unclosed annotation"),
            ("s s", "spaces"),
            ("s/", "ends where"),
            ("(s", "parenthesis"),
            ("µs", "printable ASCII"),
            ("s..s", "ends where a unit|unexpected"),
        ] {
            let err = validate(unit).expect_err(unit);
            assert!(why.split('|').any(|w| err.contains(w)), "{unit}: {err}");
        }
        assert!(validate(&"s".repeat(64)).unwrap_err().contains("63"));
    }
}
