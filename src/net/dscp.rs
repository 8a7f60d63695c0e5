//! DSCP and ECN: the TOS / traffic-class byte by number or by DSCP name
//! (`--tos`), and names for what came back.

/// Parses a `--tos` value into the TOS byte: a number (decimal or `0x` hex,
/// 0-255, the whole byte as IP_TOS takes it) or a DSCP name — `EF`, `CS0`-`CS7`,
/// `AF11`-`AF43`, `LE`, `VA` — shifted into the upper six bits.
///
/// A number with either of its low two bits set is refused: those bits are
/// ECN, so `46` would mean DSCP 11 with ECT(0) and `3` would mark CE. The
/// message names the DSCP name or TOS byte most likely meant.
pub fn parse_tos(text: &str) -> Result<u8, String> {
    let text = text.trim();
    let number = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u8::from_str_radix(hex, 16).ok(),
        None => text.parse::<u8>().ok(),
    };
    if let Some(tos) = number {
        if tos & 3 == 0 {
            return Ok(tos);
        }
        // Below 64 it reads as a DSCP given as a number; above, as a TOS
        // byte with ECN bits.
        let dscp = if tos < 64 { tos } else { tos >> 2 };
        let name = dscp_name(dscp);
        let give = if name == dscp.to_string() {
            format!("--tos {}", dscp << 2)
        } else {
            format!("--tos {name} (TOS {})", dscp << 2)
        };
        return Err(format!(
            "the low two bits of the TOS byte are ECN; for DSCP {dscp} give {give}"
        ));
    }
    dscp_of_name(text).map(|dscp| dscp << 2).ok_or_else(|| {
        format!(
            "'{text}' is neither a TOS byte (0-255, or 0x00-0xff) nor a DSCP name (EF, AF11-AF43, CS0-CS7, LE, VA)"
        )
    })
}

/// The DSCP (0-63) a name stands for.
fn dscp_of_name(name: &str) -> Option<u8> {
    let upper = name.to_ascii_uppercase();
    match upper.as_str() {
        "EF" => return Some(46),
        "VA" => return Some(44),
        "LE" => return Some(1),
        "BE" | "DF" => return Some(0),
        _ => {}
    }
    let digits = |s: &str| -> Option<Vec<u8>> {
        s.bytes()
            .map(|b| b.is_ascii_digit().then(|| b - b'0'))
            .collect()
    };
    if let Some(n) = upper.strip_prefix("CS").and_then(digits) {
        return match n[..] {
            [class @ 0..=7] => Some(class * 8),
            _ => None,
        };
    }
    if let Some(n) = upper.strip_prefix("AF").and_then(digits) {
        return match n[..] {
            [class @ 1..=4, drop @ 1..=3] => Some(class * 8 + drop * 2),
            _ => None,
        };
    }
    None
}

/// A DSCP's usual name (`EF`, `AF41`, `CS1`…), or its number.
pub fn dscp_name(dscp: u8) -> String {
    match dscp {
        46 => "EF".to_owned(),
        44 => "VA".to_owned(),
        1 => "LE".to_owned(),
        0 => "CS0".to_owned(),
        d if d % 8 == 0 && d < 64 => format!("CS{}", d / 8),
        d if (8..40).contains(&d) && d % 2 == 0 && (d % 8) / 2 <= 3 => {
            format!("AF{}{}", d / 8, (d % 8) / 2)
        }
        d => d.to_string(),
    }
}

/// An ECN codepoint's name (RFC 3168): Not-ECT, ECT(1), ECT(0), CE.
pub fn ecn_name(ecn: u8) -> &'static str {
    match ecn & 3 {
        0 => "Not-ECT",
        1 => "ECT(1)",
        2 => "ECT(0)",
        _ => "CE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_give_the_tos_byte() {
        assert_eq!(parse_tos("0xb8"), Ok(0xb8));
        assert_eq!(parse_tos("184"), Ok(0xb8));
        assert_eq!(parse_tos("EF"), Ok(0xb8));
        assert_eq!(parse_tos("ef"), Ok(0xb8));
        assert_eq!(parse_tos("AF41"), Ok(34 << 2));
        assert_eq!(parse_tos("CS1"), Ok(8 << 2));
        assert_eq!(parse_tos("CS0"), Ok(0));
        assert_eq!(parse_tos("0x20"), Ok(32));
        for bad in ["AF44", "AF51", "CS8", "XX", "256", "0x1ff", ""] {
            assert!(parse_tos(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_number_with_ecn_bits_is_refused_with_the_dscp_meant() {
        assert_eq!(
            parse_tos("46"),
            Err(
                "the low two bits of the TOS byte are ECN; for DSCP 46 give --tos EF (TOS 184)"
                    .into()
            )
        );
        assert_eq!(
            parse_tos("3"),
            Err("the low two bits of the TOS byte are ECN; for DSCP 3 give --tos 12".into())
        );
        assert_eq!(
            parse_tos("0xb9"),
            Err(
                "the low two bits of the TOS byte are ECN; for DSCP 46 give --tos EF (TOS 184)"
                    .into()
            )
        );
        for bad in ["1", "2", "185", "255", "0x03"] {
            assert!(parse_tos(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dscp_names_read_back() {
        for name in ["EF", "AF11", "AF43", "CS1", "CS7", "CS0", "VA", "LE"] {
            let dscp = dscp_of_name(name).unwrap();
            assert_eq!(dscp_name(dscp), name);
        }
        assert_eq!(dscp_name(3), "3");
        assert_eq!(ecn_name(0b11), "CE");
    }
}
