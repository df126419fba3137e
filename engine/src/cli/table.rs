//! Aligned text tables for the CLI's people-facing output (`--json` is for scripts).
//!
//! Cells come from a server, so control characters (newlines, tabs, terminal escapes) are
//! replaced by spaces: a flow name cannot break the layout or drive the terminal.

/// A table: a header row and rows of cells, printed with columns padded to their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are empty, extra cells are dropped.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut row: Vec<String> = cells.into_iter().map(|c| clean(&c.into())).collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row; the header bold when `color`. The last column is
    /// not padded, so lines carry no trailing spaces.
    pub fn render(&self, color: bool) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(width(cell));
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                out.push_str(cell);
                if i + 1 < columns {
                    out.extend(std::iter::repeat_n(' ', widths[i] - width(cell) + 2));
                }
            }
            out.truncate(out.trim_end().len());
            out
        };
        let mut text = String::new();
        let header = line(&self.headers);
        if color {
            text.push_str(&format!("\x1b[1m{header}\x1b[0m\n"));
        } else {
            text.push_str(&header);
            text.push('\n');
        }
        for row in &self.rows {
            text.push_str(&line(row));
            text.push('\n');
        }
        text
    }

    /// Prints the table to stdout (colour as [`super::trace::use_color`] decides).
    pub fn print(&self) {
        print!("{}", self.render(super::trace::use_color()));
    }
}

/// Columns a cell takes: characters, which is right for the ASCII ids, names and times the
/// tables hold (wide CJK characters would take two).
fn width(text: &str) -> usize {
    text.chars().count()
}

/// `text` with every control character replaced by a space.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn columns_align_to_the_widest_cell_without_trailing_spaces() {
        let mut t = Table::new(&["ID", "NAME", "VERSION"]);
        t.row(["a", "first flow", "1"]);
        t.row(["abcdef", "x", "12"]);
        assert_eq!(
            t.render(false),
            "ID      NAME        VERSION\n\
             a       first flow  1\n\
             abcdef  x           12\n"
        );
    }

    #[test]
    fn control_characters_cannot_break_the_layout_and_colour_is_optional() {
        let mut t = Table::new(&["NAME", "NOTE"]);
        t.row(["evil\n\x1b[31mred", "x"]);
        t.row(["short"]);
        let plain = t.render(false);
        assert_eq!(plain.lines().count(), 3, "{plain}");
        assert!(!plain.contains('\x1b'), "{plain:?}");
        assert!(plain.lines().nth(2).unwrap() == "short", "{plain:?}");
        assert!(t.render(true).starts_with("\x1b[1mNAME"));
    }
}
