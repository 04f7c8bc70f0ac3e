//! One corp's contacts: members, departments, tags, external contacts and its own apps. The
//! emulated world holds one per corp; control calls change them as an admin would.

use crate::scenario::{Agent, CorpData, Department, ExternalContact, Member, Tag};

impl CorpData {
    /// A corp always has its root department 1, named after the corp.
    pub(crate) fn with_root(mut self) -> CorpData {
        if self.departments.is_empty() {
            self.departments.push(Department {
                id: 1,
                name: self.name.clone(),
                parentid: 0,
                order: 0,
            });
        }
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let corp = &self.corp_id;
        if self.members.is_empty() {
            return Err(format!(
                "corp {corp}: at least one member is needed: the authorize page logs one in"
            ));
        }
        for c in &self.external_contacts {
            if c.kind != 1 && c.kind != 2 {
                return Err(format!(
                    "external contact {}: type must be 1 or 2",
                    c.external_userid
                ));
            }
            if let Some(u) = c.follow_user.iter().find(|u| self.member(u).is_none()) {
                return Err(format!(
                    "external contact {}: follow_user {u} is not a member",
                    c.external_userid
                ));
            }
        }
        let mut secrets: Vec<&str> = self.agents.iter().map(|a| a.secret.as_str()).collect();
        secrets.extend(self.contact_secret.as_deref());
        secrets.sort_unstable();
        if secrets.windows(2).any(|w| w[0] == w[1]) {
            return Err("every agent secret and the contact secret must differ".into());
        }
        for (i, d) in self.departments.iter().enumerate() {
            if d.id == 0 || self.departments[..i].iter().any(|o| o.id == d.id) {
                return Err(format!(
                    "corp {corp}: department ids are positive and unique ({})",
                    d.id
                ));
            }
            if d.parentid != 0 && self.department(d.parentid).is_none() {
                return Err(format!(
                    "corp {corp}: department {}: parent {} does not exist",
                    d.id, d.parentid
                ));
            }
            if self.ancestors(d.id).len() > self.departments.len() {
                return Err(format!(
                    "corp {corp}: department {} is its own ancestor",
                    d.id
                ));
            }
        }
        for m in &self.members {
            if let Some(d) = m.department.iter().find(|d| self.department(**d).is_none()) {
                return Err(format!(
                    "member {}: department {d} does not exist",
                    m.userid
                ));
            }
        }
        for (i, t) in self.tags.iter().enumerate() {
            if t.tagid == 0 || self.tags[..i].iter().any(|o| o.tagid == t.tagid) {
                return Err(format!(
                    "corp {corp}: tag ids are positive and unique ({})",
                    t.tagid
                ));
            }
            if let Some(u) = t.users.iter().find(|u| self.member(u).is_none()) {
                return Err(format!("tag {}: user {u} is not a member", t.tagid));
            }
            if let Some(d) = t
                .departments
                .iter()
                .find(|d| self.department(**d).is_none())
            {
                return Err(format!("tag {}: department {d} does not exist", t.tagid));
            }
        }
        Ok(())
    }

    pub fn member(&self, userid: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.userid == userid)
    }

    pub fn agent(&self, agent_id: u64) -> Option<&Agent> {
        self.agents.iter().find(|a| a.agent_id == agent_id)
    }

    pub fn external_contact(&self, id: &str) -> Option<&ExternalContact> {
        self.external_contacts
            .iter()
            .find(|c| c.external_userid == id)
    }

    pub fn department(&self, id: u64) -> Option<&Department> {
        self.departments.iter().find(|d| d.id == id)
    }

    pub fn tag(&self, tagid: u64) -> Option<&Tag> {
        self.tags.iter().find(|t| t.tagid == tagid)
    }

    /// The parents of `id`, nearest first; stops at a cycle's second lap.
    fn ancestors(&self, id: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut cur = self.department(id).map(|d| d.parentid);
        while let Some(p) = cur.filter(|p| *p != 0) {
            out.push(p);
            if out.len() > self.departments.len() {
                break;
            }
            cur = self.department(p).map(|d| d.parentid);
        }
        out
    }

    /// `department/simplelist?id=`: the department and every one below it, parents before
    /// children, siblings by `order` (WeCom: the larger first) then id.
    pub fn subtree(&self, id: u64) -> Vec<&Department> {
        let mut out: Vec<&Department> = self.department(id).into_iter().collect();
        let mut i = 0;
        while i < out.len() {
            let parent = out[i].id;
            let mut children: Vec<&Department> = self
                .departments
                .iter()
                .filter(|d| d.parentid == parent && d.id != parent)
                .collect();
            children.sort_by_key(|d| (std::cmp::Reverse(d.order), d.id));
            out.extend(children);
            i += 1;
            if out.len() > self.departments.len() {
                break;
            }
        }
        out
    }
}
