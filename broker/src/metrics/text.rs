//! A small writer for the Prometheus text exposition format (version 0.0.4), for the half of
//! `/metrics` computed at scrape time: one `# HELP` / `# TYPE` header per family, then its
//! samples, with label values escaped (`\`, `"`, newline).

use std::fmt::Write;

/// The Prometheus metric type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// A page being written.
#[derive(Debug, Default)]
pub struct Page {
    out: String,
}

impl Page {
    pub fn with_capacity(bytes: usize) -> Page {
        Page {
            out: String::with_capacity(bytes),
        }
    }

    /// Starts a family: its help text and type. Samples of it follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample of the family last started.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(label);
                self.out.push_str("=\"");
                escape_into(&mut self.out, value);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        write_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    pub fn into_string(self) -> String {
        self.out
    }
}

fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn write_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        // Integral values (offsets, counts) without a trailing ".0".
        let _ = write!(out, "{}", value as i64);
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_and_escapes_labels() {
        let mut page = Page::default();
        page.family("runnel_x_total", Kind::Counter, "X things");
        page.sample(
            "runnel_x_total",
            &[("group", "a\"b\\c\nd"), ("p", "0")],
            60.0,
        );
        page.single("runnel_y_seconds", Kind::Gauge, "Y", 0.5);
        assert_eq!(
            page.into_string(),
            "# HELP runnel_x_total X things\n# TYPE runnel_x_total counter\n\
             runnel_x_total{group=\"a\\\"b\\\\c\\nd\",p=\"0\"} 60\n\
             # HELP runnel_y_seconds Y\n# TYPE runnel_y_seconds gauge\nrunnel_y_seconds 0.5\n"
        );
    }
}
