//! Conditions `METRIC OP NUMBER` (`auc >= 0.8`, `drift_share > 0.3`), parsed from `kairo.yaml`
//! and judged against a value: promotion gates and monitoring alert rules share them.

use std::fmt;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

impl Op {
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Ge => left >= right,
            Op::Gt => left > right,
            Op::Le => left <= right,
            Op::Lt => left < right,
            Op::Eq => (left - right).abs() <= f64::EPSILON * right.abs().max(1.0),
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Lt => "<",
            Op::Eq => "==",
        }
    }
}

/// `auc >= 0.8`
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub metric: String,
    pub op: Op,
    pub value: f64,
}

impl Condition {
    pub fn parse(text: &str) -> Result<Condition, String> {
        let ops = [(">=", Op::Ge), ("<=", Op::Le), ("==", Op::Eq), (">", Op::Gt), ("<", Op::Lt)];
        for (token, op) in ops {
            if let Some(at) = text.find(token) {
                let metric = text[..at].trim();
                let number = text[at + token.len()..].trim();
                if metric.is_empty() || metric.contains(char::is_whitespace) {
                    return Err(format!("`{text}`: expected `METRIC {token} NUMBER`"));
                }
                let value: f64 = number.parse().map_err(|_| format!("`{text}`: `{number}` is not a number"))?;
                return Ok(Condition { metric: metric.to_string(), op, value });
            }
        }
        Err(format!("`{text}`: expected `METRIC OP NUMBER` with OP one of >=, >, <=, <, =="))
    }

    pub fn holds(&self, value: f64) -> bool {
        self.op.holds(value, self.value)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.metric, self.op.text(), self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_judges() {
        let c = Condition::parse("auc >= 0.80").unwrap();
        assert_eq!((c.metric.as_str(), c.op, c.value), ("auc", Op::Ge, 0.8));
        assert!(c.holds(0.8) && !c.holds(0.79));
        assert!(Condition::parse("size_mb<5").unwrap().holds(4.0));
        assert!(Condition::parse("auc >= high").unwrap_err().contains("not a number"));
        assert!(Condition::parse("auc").unwrap_err().contains("METRIC OP NUMBER"));
    }
}
