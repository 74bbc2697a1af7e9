//! What the page shows of records, read from its DOM: each row's cells by column (a field's
//! name, or `spread`) with their text, class (lit or not) and count of changes shown, and
//! the single view's headline and boxes.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::browser::Browser;

/// One cell (a row's, or a box of the single view).
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub text: String,
    /// Its class: `field`, `price` (the headline), `spread`, `age`, plus `changed` and
    /// `rise` or `fall` while lit.
    pub class: String,
    /// How many changes of its field it has shown (`data-changes`; 0 in the single view).
    pub changes: u64,
}

impl Cell {
    pub fn lit(&self) -> bool {
        self.class.split(' ').any(|c| c == "changed")
    }
}

/// One row of the watchlist.
#[derive(Debug, Clone)]
pub struct QuoteRow {
    pub symbol: String,
    /// `up`, `down` or empty: the headline's last move.
    pub class: String,
    /// The headline's change, with its arrow.
    pub change: String,
    /// By column: a field's name, or `spread`.
    pub cells: HashMap<String, Cell>,
}

/// What the quote board shows.
#[derive(Debug, Clone)]
pub struct Board {
    pub state: String,
    pub id: String,
    pub view: String,
    pub fallbacks: u64,
    /// The column titles.
    pub head: Vec<String>,
    pub rows: Vec<QuoteRow>,
    /// The single view: the headline large, its change, the other fields' boxes.
    pub price: Cell,
    pub change: String,
    pub boxes: HashMap<String, Cell>,
    /// Points of the single view's chart.
    pub points: usize,
}

impl Board {
    pub fn row(&self, symbol: &str) -> &QuoteRow {
        self.rows
            .iter()
            .find(|r| r.symbol == symbol)
            .unwrap_or_else(|| panic!("no row {symbol}: {self:#?}"))
    }

    pub fn cell(&self, symbol: &str, col: &str) -> &Cell {
        self.row(symbol)
            .cells
            .get(col)
            .unwrap_or_else(|| panic!("no {col} for {symbol}: {self:#?}"))
    }

    pub fn text(&self, symbol: &str, col: &str) -> &str {
        &self.cell(symbol, col).text
    }

    /// The rows' lit cells, as `SYMBOL column`, sorted.
    pub fn lit(&self) -> Vec<String> {
        let mut lit: Vec<String> = self
            .rows
            .iter()
            .flat_map(|r| {
                r.cells
                    .iter()
                    .filter(|(_, c)| c.lit())
                    .map(move |(col, _)| format!("{} {col}", r.symbol))
            })
            .collect();
        lit.sort();
        lit
    }
}

pub fn cell(v: &Value) -> Cell {
    Cell {
        text: v["text"].as_str().unwrap_or_default().to_string(),
        class: v["cls"].as_str().unwrap_or_default().to_string(),
        changes: v["changes"].as_u64().unwrap_or_default(),
    }
}

pub fn cells(v: &Value) -> HashMap<String, Cell> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), cell(v)))
        .collect()
}

pub fn board(b: &Browser) -> Board {
    let v = b.eval(
        "var $ = function (id) { return document.getElementById(id); };
         var cell = function (el, text) {
           return { text: text.textContent, cls: el.className,
                    changes: +(el.getAttribute('data-changes') || 0) };
         };
         var byCol = function (els, text) {
           var out = {};
           [].forEach.call(els, function (el) { out[el.getAttribute('data-col')] = cell(el, text(el)); });
           return out;
         };
         var pts = document.querySelector('#chart polyline').getAttribute('points').trim();
         return { state: $('state').textContent, id: $('event-id').textContent,
                  view: $('main').className, fallbacks: window.tickerd.fallbacks,
                  head: [].map.call(document.querySelectorAll('#head th'), function (th) { return th.textContent; }),
                  rows: [].map.call(document.querySelectorAll('#rows tr'), function (tr) {
                    return { symbol: tr.getAttribute('data-symbol'), cls: tr.className,
                             change: tr.querySelector('.change').textContent,
                             cells: byCol(tr.querySelectorAll('[data-col]'), function (td) { return td; }) };
                  }),
                  price: cell($('price'), $('price')), change: $('change').textContent,
                  boxes: byCol(document.querySelectorAll('#quote [data-col]'), function (d) { return d.lastChild; }),
                  points: pts ? pts.split(' ').length : 0 };",
    );
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    Board {
        state: s("state"),
        id: s("id"),
        view: s("view"),
        fallbacks: v["fallbacks"].as_u64().unwrap(),
        head: v["head"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_string())
            .collect(),
        rows: v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| QuoteRow {
                symbol: r["symbol"].as_str().unwrap().to_string(),
                class: r["cls"].as_str().unwrap_or_default().to_string(),
                change: r["change"].as_str().unwrap_or_default().to_string(),
                cells: cells(&r["cells"]),
            })
            .collect(),
        price: cell(&v["price"]),
        change: s("change"),
        boxes: cells(&v["boxes"]),
        points: v["points"].as_u64().unwrap() as usize,
    }
}

/// Looks at the board until `cond` holds; panics with what it showed last after `within`.
pub fn wait_board(
    b: &Browser,
    within: Duration,
    what: &str,
    cond: impl Fn(&Board) -> bool,
) -> Board {
    let end = Instant::now() + within;
    loop {
        let seen = board(b);
        if cond(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < end,
            "the page did not show {what} in {within:?}; it shows {seen:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The wall clock in ms since the epoch, as a `time` field holds it.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// An age as the page writes it (`4.2s`, `42s`, `3m`), in seconds.
pub fn age_s(text: &str) -> f64 {
    match text.as_bytes().last() {
        Some(b's') => text[..text.len() - 1].parse().ok(),
        Some(b'm') => text[..text.len() - 1].parse::<f64>().ok().map(|m| m * 60.0),
        _ => None,
    }
    .unwrap_or_else(|| panic!("not an age: {text:?}"))
}

/// Every row's cells by `SYMBOL column`, but the ages (`time`, which grows) and `symbol`'s
/// columns in `skip`: what must not change when something else does.
pub fn fixed(board: &Board, symbol: &str, skip: &[&str]) -> Vec<(String, Cell)> {
    let mut out: Vec<(String, Cell)> = board
        .rows
        .iter()
        .flat_map(|r| {
            r.cells
                .iter()
                .filter(|(col, _)| {
                    col.as_str() != "time" && (r.symbol != symbol || !skip.contains(&col.as_str()))
                })
                .map(move |(col, c)| (format!("{} {col}", r.symbol), c.clone()))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
