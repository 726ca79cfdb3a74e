//! Pages in German, French and Spanish about the same world: real sentences
//! in each language (names are invented, so they carry no language signal;
//! the function words and filler must), which `langid` must recognise and a
//! `keep: [en]` recipe must drop.

use super::html::Block;
use super::world::{World, below, shuffle};
use crate::model::rng::Rng;

/// A language of the foreign pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// German.
    De,
    /// French.
    Fr,
    /// Spanish.
    Es,
}

impl Lang {
    /// ISO 639-1 code.
    pub fn code(self) -> &'static str {
        match self {
            Lang::De => "de",
            Lang::Fr => "fr",
            Lang::Es => "es",
        }
    }
}

const DE: [&str; 14] = [
    "Im Sommer ist das Wetter dort meistens warm und freundlich.",
    "Viele Besucher kommen wegen der alten Brücken und der schönen Märkte.",
    "Die Straßen sind eng, deshalb gehen die meisten Leute zu Fuß.",
    "Am Abend sitzen die Menschen gern in den kleinen Cafés am Wasser.",
    "Im Winter fällt in den Bergen oft viel Schnee.",
    "Das älteste Gebäude der Stadt ist eine Kirche aus grauem Stein.",
    "Jeden Herbst gibt es ein großes Fest mit Musik und Tanz.",
    "Wer Ruhe sucht, findet sie auf den Wegen durch den dichten Wald.",
    "Die Bauern bringen am Samstag Gemüse und Eier auf den Markt.",
    "Von der Brücke aus hat man einen herrlichen Blick über das Tal.",
    "Die Einwohner sind stolz auf ihre Geschichte und ihr Handwerk.",
    "Mit dem Zug kommt man zweimal am Tag von der Küste hierher.",
    "Es lohnt sich, mindestens eine Woche zu bleiben.",
    "Die Kinder spielen am Ufer, während die Eltern sich unterhalten.",
];
const FR: [&str; 14] = [
    "En été, le temps y est le plus souvent doux et agréable.",
    "Beaucoup de visiteurs viennent pour les vieux ponts et les beaux marchés.",
    "Les rues sont étroites, alors la plupart des gens se déplacent à pied.",
    "Le soir, les habitants aiment s'asseoir dans les petits cafés au bord de l'eau.",
    "En hiver, il neige souvent beaucoup dans les montagnes.",
    "Le plus vieux bâtiment de la ville est une église en pierre grise.",
    "Chaque automne, il y a une grande fête avec de la musique et de la danse.",
    "Ceux qui cherchent le calme le trouvent sur les chemins de la forêt.",
    "Le samedi, les paysans apportent des légumes et des œufs au marché.",
    "Depuis le pont, on a une vue magnifique sur toute la vallée.",
    "Les habitants sont fiers de leur histoire et de leur savoir-faire.",
    "Le train venant de la côte arrive deux fois par jour.",
    "Il vaut la peine de rester au moins une semaine.",
    "Les enfants jouent sur la rive pendant que leurs parents bavardent.",
];
const ES: [&str; 14] = [
    "En verano, el tiempo allí suele ser cálido y agradable.",
    "Muchos visitantes vienen por los puentes antiguos y los mercados bonitos.",
    "Las calles son estrechas, así que la mayoría de la gente va a pie.",
    "Por la tarde, a los vecinos les gusta sentarse en los pequeños cafés junto al agua.",
    "En invierno suele nevar mucho en las montañas.",
    "El edificio más antiguo de la ciudad es una iglesia de piedra gris.",
    "Cada otoño hay una gran fiesta con música y baile.",
    "Quien busca tranquilidad la encuentra en los caminos del bosque.",
    "Los sábados, los campesinos llevan verduras y huevos al mercado.",
    "Desde el puente se tiene una vista magnífica de todo el valle.",
    "Los habitantes están orgullosos de su historia y de su oficio.",
    "El tren de la costa llega dos veces al día.",
    "Vale la pena quedarse al menos una semana.",
    "Los niños juegan en la orilla mientras sus padres conversan.",
];

/// A travel-guide page about town `t` in `lang`: (title, blocks).
pub fn guide_page(rng: &mut Rng, w: &World, lang: Lang, t: usize) -> (String, Vec<Block>) {
    let town = &w.towns[t];
    let country = &w.countries[town.country];
    let capital = &w.towns[country.capital].name;
    let founder = &w.people[town.founder].name;
    let (tn, cn, r) = (&town.name, &country.name, &country.river);
    let (title, facts, filler): (String, Vec<String>, &[&str]) = match lang {
        Lang::De => (
            format!("Reisetipps für {tn}"),
            vec![
                format!("{tn} ist eine Stadt in {cn}."),
                format!("Die Hauptstadt von {cn} ist {capital}."),
                format!("Der wichtigste Fluss des Landes ist der {r}."),
                format!("Die Stadt wurde von {founder} gegründet."),
            ],
            &DE,
        ),
        Lang::Fr => (
            format!("Que voir à {tn}"),
            vec![
                format!("{tn} est une ville qui se trouve en {cn}."),
                format!("La capitale du pays est {capital}."),
                format!("Le fleuve principal du pays est le {r}."),
                format!("La ville a été fondée par {founder}."),
            ],
            &FR,
        ),
        Lang::Es => (
            format!("Qué ver en {tn}"),
            vec![
                format!("{tn} es una ciudad que está en {cn}."),
                format!("La capital del país es {capital}."),
                format!("El río principal del país es el {r}."),
                format!("La ciudad fue fundada por {founder}."),
            ],
            &ES,
        ),
    };
    let mut idx: Vec<usize> = (0..filler.len()).collect();
    shuffle(rng, &mut idx);
    let mut sentences: Vec<String> = idx.iter().take(9).map(|&i| filler[i].to_string()).collect();
    for f in facts {
        let at = below(rng, sentences.len() + 1);
        sentences.insert(at, f);
    }
    let blocks = sentences.chunks(5).map(|c| Block::Para(c.join(" "))).collect();
    (title, blocks)
}
