//! Page rendering: each site wraps its article in its own boilerplate
//! (cookie banner, header with navigation, sidebar, footer), marked up the
//! way real sites do it — some with `<nav>`/`<aside>`/`<footer>`, some with
//! `<div class="menu">` — so that `extract` has real work to do.

/// A block of an article's main content.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A section heading (`<h2>`).
    Heading(String),
    /// A paragraph (`<p>`).
    Para(String),
}

/// A website: its domain and boilerplate.
#[derive(Debug, Clone)]
pub struct Site {
    /// Host name (`www.atlasofthenorth.org`).
    pub domain: &'static str,
    /// Display name in the header and footer.
    pub name: &'static str,
    /// `lang` attribute of `<html>`.
    pub lang: &'static str,
    /// Navigation labels.
    pub nav: &'static [&'static str],
    /// Cookie banner text and its button.
    pub cookie: (&'static str, &'static str),
    /// Sidebar heading.
    pub sidebar: &'static str,
    /// Footer words for "Privacy" and "Terms".
    pub legal: (&'static str, &'static str),
    /// Semantic HTML5 elements (`true`) or classed `<div>`s (`false`).
    pub semantic: bool,
}

/// One page before rendering.
#[derive(Debug, Clone)]
pub struct Article {
    /// `<title>` and `<h1>`.
    pub title: String,
    /// Author shown in the byline, if any.
    pub author: Option<String>,
    /// Date shown in the byline (`2024-03-05`).
    pub date: String,
    /// The main content.
    pub blocks: Vec<Block>,
    /// Sidebar links: (label, path).
    pub links: Vec<(String, String)>,
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// A URL path segment from a title: lowercase words joined by `-`.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for w in s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(&w.to_lowercase());
    }
    out
}

/// The full HTML document of `a` on `site`.
pub fn render(site: &Site, a: &Article) -> String {
    use std::fmt::Write;
    let mut h = String::with_capacity(4096);
    let title = esc(&a.title);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title} | {}</title>\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <link rel=\"stylesheet\" href=\"/static/site.css\">\n</head>\n<body>\n",
        site.lang, site.name
    );
    let _ = writeln!(
        h,
        "<div id=\"cookie-banner\" class=\"cookie-consent\"><p>{}</p><button class=\"accept\">{}</button></div>",
        site.cookie.0, site.cookie.1
    );
    let nav: String = site
        .nav
        .iter()
        .map(|l| format!("<li><a href=\"/{}/\">{l}</a></li>", slug(l)))
        .collect();
    if site.semantic {
        let _ = write!(
            h,
            "<header class=\"site-header\"><a class=\"logo\" href=\"/\">{}</a>\n<nav class=\"main-nav\"><ul>{nav}</ul></nav></header>\n<main>\n<article>\n",
            site.name
        );
    } else {
        let _ = write!(
            h,
            "<div class=\"header\"><a class=\"logo\" href=\"/\">{}</a>\n<div class=\"menu navbar\"><ul>{nav}</ul></div></div>\n<div class=\"content\">\n<div class=\"post-body entry-content\">\n",
            site.name
        );
    }
    let _ = writeln!(h, "<h1>{title}</h1>");
    match &a.author {
        Some(by) => {
            let _ = writeln!(
                h,
                "<p class=\"byline\"><span class=\"author\">{}</span> <time>{}</time></p>",
                esc(by),
                a.date
            );
        }
        None => {
            let _ = writeln!(h, "<p class=\"byline\"><time>{}</time></p>", a.date);
        }
    }
    for b in &a.blocks {
        let _ = match b {
            Block::Heading(s) => writeln!(h, "<h2>{}</h2>", esc(s)),
            Block::Para(s) => writeln!(h, "<p>{}</p>", esc(s)),
        };
    }
    let links: String = a
        .links
        .iter()
        .map(|(label, path)| format!("<li><a href=\"{path}\">{}</a></li>", esc(label)))
        .collect();
    let (close_main, aside_open, aside_close) = if site.semantic {
        ("</article>\n", "<aside class=\"sidebar\">", "</aside>\n</main>\n")
    } else {
        ("</div>\n", "<div class=\"sidebar widget-area\">", "</div>\n</div>\n")
    };
    let _ = write!(h, "{close_main}{aside_open}<h3>{}</h3><ul>{links}</ul>{aside_close}", site.sidebar);
    let footer_tag = if site.semantic { "footer" } else { "div" };
    let _ = write!(
        h,
        "<{footer_tag} class=\"site-footer footer\"><p>&copy; 2024 {}. <a href=\"/privacy/\">{}</a> <a href=\"/terms/\">{}</a></p></{footer_tag}>\n</body>\n</html>\n",
        site.name, site.legal.0, site.legal.1
    );
    h
}

/// The sites of the crawl. English sites first; see [`Sites`] for which is which.
pub const SITES: Sites = Sites {
    atlas: Site {
        domain: "www.atlasofthenorth.org",
        name: "Atlas of the North",
        lang: "en",
        nav: &["Home", "Countries", "Towns", "People", "Maps", "About"],
        cookie: ("We use cookies to improve your experience on our site.", "Accept all"),
        sidebar: "See also",
        legal: ("Privacy", "Terms"),
        semantic: true,
    },
    wiki: Site {
        domain: "wiki.lakelands-atlas.net",
        name: "Lakelands Wiki",
        lang: "en",
        nav: &["Main page", "Random article", "Recent changes", "Help", "Log in"],
        cookie: ("This wiki stores cookies on your computer.", "OK"),
        sidebar: "Related articles",
        legal: ("Privacy", "Terms"),
        semantic: false,
    },
    blog: Site {
        domain: "www.wanderlog-journal.com",
        name: "Wanderlog Journal",
        lang: "en",
        nav: &["Home", "Destinations", "Travel tips", "Gear", "Contact"],
        cookie: ("We and our partners use cookies for ads and analytics.", "I agree"),
        sidebar: "Popular posts",
        legal: ("Privacy", "Terms"),
        semantic: false,
    },
    news: Site {
        domain: "news.dailylantern.net",
        name: "The Daily Lantern",
        lang: "en",
        nav: &["News", "Towns", "Business", "Culture", "Weather", "Subscribe"],
        cookie: ("Cookies help us deliver our news.", "Accept"),
        sidebar: "Most read",
        legal: ("Privacy", "Terms"),
        semantic: true,
    },
    numbers: Site {
        domain: "www.numberhouse-kids.org",
        name: "Number House",
        lang: "en",
        nav: &["Home", "Worksheets", "Games", "Parents", "Teachers"],
        cookie: ("We use cookies to remember your settings.", "Got it"),
        sidebar: "More worksheets",
        legal: ("Privacy", "Terms"),
        semantic: true,
    },
    de: Site {
        domain: "www.reisefuehrer-nordland.de",
        name: "Reiseführer Nordland",
        lang: "de",
        nav: &["Startseite", "Länder", "Städte", "Reisen", "Kontakt"],
        cookie: ("Wir verwenden Cookies, um unsere Website zu verbessern.", "Alle akzeptieren"),
        sidebar: "Weitere Artikel",
        legal: ("Datenschutz", "Impressum"),
        semantic: true,
    },
    fr: Site {
        domain: "www.guide-des-terres.fr",
        name: "Guide des Terres",
        lang: "fr",
        nav: &["Accueil", "Pays", "Villes", "Voyages", "Contact"],
        cookie: ("Nous utilisons des cookies pour améliorer votre expérience.", "Tout accepter"),
        sidebar: "À lire aussi",
        legal: ("Confidentialité", "Mentions légales"),
        semantic: false,
    },
    es: Site {
        domain: "www.guia-del-norte.es",
        name: "Guía del Norte",
        lang: "es",
        nav: &["Inicio", "Países", "Ciudades", "Viajes", "Contacto"],
        cookie: ("Utilizamos cookies para mejorar su experiencia.", "Aceptar"),
        sidebar: "Artículos relacionados",
        legal: ("Privacidad", "Aviso legal"),
        semantic: true,
    },
    spam: Site {
        domain: "best-cheap-deals-online.biz",
        name: "BEST CHEAP DEALS",
        lang: "en",
        nav: &["Deals", "Casino", "Bonus", "Win"],
        cookie: ("By using this site you agree to cookies.", "OK"),
        sidebar: "Hot offers",
        legal: ("Privacy", "Terms"),
        semantic: false,
    },
};

/// The sites by role.
#[derive(Debug, Clone)]
pub struct Sites {
    /// Encyclopedia (semantic HTML).
    pub atlas: Site,
    /// Second encyclopedia (div soup).
    pub wiki: Site,
    /// Travel blog.
    pub blog: Site,
    /// News.
    pub news: Site,
    /// Arithmetic worksheets.
    pub numbers: Site,
    /// German travel guide.
    pub de: Site,
    /// French travel guide.
    pub fr: Site,
    /// Spanish travel guide.
    pub es: Site,
    /// Keyword-stuffed spam.
    pub spam: Site,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_escapes_and_wraps_in_boilerplate() {
        let a = Article {
            title: "A & B".into(),
            author: None,
            date: "2024-01-02".into(),
            blocks: vec![Block::Para("x < y".into())],
            links: vec![("Home".into(), "/".into())],
        };
        let h = render(&SITES.atlas, &a);
        assert!(h.contains("<p>x &lt; y</p>") && h.contains("<h1>A &amp; B</h1>"));
        assert!(h.contains("cookie") && h.contains("<nav") && h.contains("&copy; 2024 Atlas of the North"));
        assert_eq!(slug("A week in Ostel!"), "a-week-in-ostel");
    }
}
