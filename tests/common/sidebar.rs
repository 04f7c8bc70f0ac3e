//! The sidebar's world: the emulator as WeCom, an upstream as the CRM, the gateway in front
//! with WeCom app `crm` (its JS-SDK the emulator's) and a route for each `external_contact`
//! mode.

use super::world::{App, Builder, World};

/// `/sidebar/` (contact optional), `/customer/` (contact required), `/staff/` (login only),
/// the rest public.
pub const ROUTES: &str = r#"
[[routes]]
location = "/sidebar/"
upstream = "crm"
login = "crm"
external_contact = "optional"

[[routes]]
location = "/customer/"
upstream = "crm"
login = "crm"
external_contact = "required"

[[routes]]
location = "/staff/"
upstream = "crm"
login = "crm"

[[routes]]
location = "/"
upstream = "crm"
"#;

/// The sidebar's world, app `crm` with the contact secret.
pub fn world() -> Builder {
    world_of(App::wecom("crm").contact())
}

/// The sidebar's world with app `crm` as given (without the contact secret, say).
pub fn world_of(crm: App) -> Builder {
    World::new().session("").app(crm).routes(ROUTES)
}
