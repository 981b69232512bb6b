//! The SVG plots `weir perf linkedin` writes beside results.json: plain SVG bars, no
//! plotting dependency.

fn svg_frame(title: &str, body: &str, width: usize) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"320\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"14\">{title}</text>\n<line x1=\"40\" y1=\"270\" x2=\"{}\" y2=\"270\" stroke=\"black\"/>\n{body}</svg>\n",
        width - 10
    )
}

pub(super) fn bar_chart(title: &str, bars: &[(&str, f64, f64)]) -> String {
    let max = bars
        .iter()
        .flat_map(|bar| [bar.1, bar.2])
        .fold(1.0, f64::max);
    let mut body = String::new();
    for (index, (label, theirs, ours)) in bars.iter().enumerate() {
        let x = 50 + index * 150;
        for (offset, value, color) in [(0, theirs, "#999"), (50, ours, "#3366cc")] {
            let height = value / max * 220.0;
            body += &format!(
                "<rect x=\"{}\" y=\"{:.1}\" width=\"45\" height=\"{height:.1}\" fill=\"{color}\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"10\">{:.0}k</text>\n",
                x + offset,
                270.0 - height,
                x + offset,
                266.0 - height,
                value / 1000.0
            );
        }
        body += &format!("<text x=\"{x}\" y=\"290\">{label}</text>\n");
    }
    svg_frame(title, &body, 50 + bars.len() * 150)
}

pub(super) fn single_bars(title: &str, bars: &[(String, f64)]) -> String {
    let max = bars.iter().map(|bar| bar.1).fold(1e-9, f64::max);
    let mut body = String::new();
    for (index, (label, value)) in bars.iter().enumerate() {
        let x = 50 + index * 110;
        let height = value / max * 220.0;
        body += &format!(
            "<rect x=\"{x}\" y=\"{:.1}\" width=\"80\" height=\"{height:.1}\" fill=\"#3366cc\"/><text x=\"{x}\" y=\"{:.1}\" font-size=\"10\">{value:.1}</text><text x=\"{x}\" y=\"290\">{label}</text>\n",
            270.0 - height,
            266.0 - height
        );
    }
    svg_frame(title, &body, 60 + bars.len() * 110)
}
