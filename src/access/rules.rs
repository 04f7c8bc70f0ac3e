//! The rule of SPEC section 17 as a plain function of the facts: who the person is, the
//! departments the member belongs to, the department tree and the tags the rule names.
//! No I/O: [`wecom_api::directory`] brings the facts, [`super::admit`] sequences both.

use crate::domain::Allow;
pub use wecom_api::directory::{MemberFacts, TagFacts, Tree};

/// The person a session names, as a rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Person<'a> {
    /// A corp member (`userid`).
    Member(&'a str),
    /// A WeCom non-member (openid only), or an identity without a userid.
    NonMember,
}

/// The facts a decision may need; a list the rule does not name needs none of its facts.
#[derive(Debug, Default)]
pub struct Facts<'a> {
    pub member: Option<&'a MemberFacts>,
    pub tree: Option<&'a Tree>,
    pub tags: &'a [(u64, TagFacts)],
}

/// Which list admitted the member, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    ByUser,
    ByDepartment(u64),
    ByTag(u64),
    Refused,
}

impl Verdict {
    pub fn admitted(self) -> bool {
        self != Verdict::Refused
    }
}

/// Whether `allow` admits `person` by `users` alone: no fact needed.
pub fn by_user(allow: &Allow, person: Person<'_>) -> bool {
    matches!(person, Person::Member(u) if allow.users.iter().any(|x| x == u))
}

/// The decision: any one list matching admits. `departments`: the member is in that
/// department or in one below it. `tags`: the member, or one of the member's own departments,
/// carries the tag (a tag on a department is WeCom's "tag the department whole"; the
/// departments below it are not tagged by it). A non-member is never admitted by a rule.
pub fn decide(allow: &Allow, person: Person<'_>, facts: &Facts<'_>) -> Verdict {
    let Person::Member(userid) = person else {
        return Verdict::Refused;
    };
    // A userid WeCom no longer knows (60111) is refused, listed by name or not.
    if facts.member.is_some_and(|m| !m.known) {
        return Verdict::Refused;
    }
    if by_user(allow, person) {
        return Verdict::ByUser;
    }
    let Some(member) = facts.member else {
        return Verdict::Refused;
    };
    if let Some(tree) = facts.tree {
        for &own in &member.department {
            if let Some(d) = tree.up_from(own).find(|d| allow.departments.contains(d)) {
                return Verdict::ByDepartment(d);
            }
        }
    }
    for (tagid, tag) in facts.tags {
        if !allow.tags.contains(tagid) {
            continue;
        }
        let tagged = tag.users.iter().any(|u| u == userid)
            || member
                .department
                .iter()
                .any(|d| tag.departments.contains(d));
        if tagged {
            return Verdict::ByTag(*tagid);
        }
    }
    Verdict::Refused
}

#[cfg(test)]
mod tests {
    use super::*;
    use wecom_api::directory::MAX_DEPTH;

    fn allow(departments: &[u64], tags: &[u64], users: &[&str]) -> Allow {
        Allow {
            users: users.iter().map(|u| (*u).to_owned()).collect(),
            departments: departments.to_vec(),
            tags: tags.to_vec(),
            ..Allow::default()
        }
    }

    /// 1 root; 2 sales under it; 3 east under sales; 5 shanghai under east (three deep below
    /// sales); 4 service under the root.
    fn tree() -> Tree {
        Tree {
            parent: [(1, 0), (2, 1), (3, 2), (5, 3), (4, 1)]
                .into_iter()
                .collect(),
        }
    }

    fn member(departments: &[u64]) -> MemberFacts {
        MemberFacts {
            name: "n".into(),
            department: departments.to_vec(),
            known: true,
        }
    }

    /// One line per case: rule, person, the member's departments, the tags' facts, verdict.
    #[test]
    fn any_one_list_admits_departments_include_those_below_tags_reach_through_departments() {
        let t = tree();
        let managers = |users: &[&str], departments: &[u64]| TagFacts {
            users: users.iter().map(|u| (*u).to_owned()).collect(),
            departments: departments.to_vec(),
        };
        let tags_of = [
            (7, managers(&["zhangsan"], &[])),
            (8, managers(&[], &[4])),
            (9, managers(&[], &[2])),
        ];
        let zs = Person::Member("zhangsan");
        let ls = Person::Member("lisi");
        type Case<'a> = (Allow, Person<'a>, &'a [u64], Verdict);
        let cases: Vec<Case> = vec![
            // users
            (allow(&[], &[], &["zhangsan"]), zs, &[4], Verdict::ByUser),
            (allow(&[], &[], &["zhangsan"]), ls, &[4], Verdict::Refused),
            // departments: itself, one, two and three levels below
            (allow(&[2], &[], &[]), zs, &[2], Verdict::ByDepartment(2)),
            (allow(&[2], &[], &[]), zs, &[3], Verdict::ByDepartment(2)),
            (allow(&[2], &[], &[]), zs, &[5], Verdict::ByDepartment(2)),
            (allow(&[1], &[], &[]), zs, &[5], Verdict::ByDepartment(1)),
            (allow(&[3], &[], &[]), zs, &[5], Verdict::ByDepartment(3)),
            // a department above the rule's, or beside it, does not count
            (allow(&[3], &[], &[]), zs, &[2], Verdict::Refused),
            (allow(&[2], &[], &[]), ls, &[4], Verdict::Refused),
            // several departments: any one of the member's
            (allow(&[2], &[], &[]), ls, &[4, 5], Verdict::ByDepartment(2)),
            // tags: the member tagged, or the member's own department tagged
            (allow(&[], &[7], &[]), zs, &[5], Verdict::ByTag(7)),
            (allow(&[], &[7], &[]), ls, &[4], Verdict::Refused),
            (allow(&[], &[8], &[]), ls, &[4], Verdict::ByTag(8)),
            // tag 9 is on department 2 whole; a member of 3 (below it) is not its member
            (allow(&[], &[9], &[]), zs, &[3], Verdict::Refused),
            (allow(&[], &[9], &[]), zs, &[2], Verdict::ByTag(9)),
            // several lists: any one matching admits
            (allow(&[4], &[7], &["wangwu"]), zs, &[5], Verdict::ByTag(7)),
            (
                allow(&[4], &[7], &["wangwu"]),
                ls,
                &[4],
                Verdict::ByDepartment(4),
            ),
            (
                allow(&[4], &[7], &["wangwu"]),
                Person::Member("wangwu"),
                &[],
                Verdict::ByUser,
            ),
            (
                allow(&[3], &[8], &["wangwu"]),
                Person::Member("zhaoliu"),
                &[1],
                Verdict::Refused,
            ),
            // non-members: never by a rule, whatever the lists
            (
                allow(&[1], &[7, 8, 9], &["zhangsan"]),
                Person::NonMember,
                &[],
                Verdict::Refused,
            ),
            // no departments at all (60111: no longer a member)
            (allow(&[1], &[8], &[]), zs, &[], Verdict::Refused),
        ];
        for (rule, person, departments, want) in cases {
            let m = member(departments);
            let facts = Facts {
                member: Some(&m),
                tree: Some(&t),
                tags: &tags_of,
            };
            assert_eq!(
                decide(&rule, person, &facts),
                want,
                "{} {person:?} in {departments:?}",
                rule.describe()
            );
        }
        // A userid WeCom no longer knows (60111): refused, even by a rule listing it.
        let gone = MemberFacts::default();
        let facts = Facts {
            member: Some(&gone),
            tree: Some(&t),
            tags: &tags_of,
        };
        let rule = allow(&[1], &[7], &["zhangsan"]);
        assert_eq!(decide(&rule, zs, &facts), Verdict::Refused);
    }

    #[test]
    fn a_tag_the_rule_does_not_name_never_admits() {
        let t = tree();
        let m = member(&[4]);
        let tags = [(
            8,
            TagFacts {
                users: vec![],
                departments: vec![4],
            },
        )];
        let facts = Facts {
            member: Some(&m),
            tree: Some(&t),
            tags: &tags,
        };
        assert_eq!(
            decide(&allow(&[], &[7], &[]), Person::Member("lisi"), &facts),
            Verdict::Refused
        );
    }

    #[test]
    fn a_tree_with_a_cycle_ends() {
        let t = Tree {
            parent: [(2, 3), (3, 2)].into_iter().collect(),
        };
        assert_eq!(t.up_from(2).count(), MAX_DEPTH);
        let m = member(&[2]);
        let facts = Facts {
            member: Some(&m),
            tree: Some(&t),
            tags: &[],
        };
        assert_eq!(
            decide(&allow(&[1], &[], &[]), Person::Member("x"), &facts),
            Verdict::Refused
        );
    }

    #[test]
    fn users_need_no_facts() {
        let facts = Facts::default();
        let rule = allow(&[2], &[7], &["zhangsan"]);
        assert!(by_user(&rule, Person::Member("zhangsan")));
        assert_eq!(
            decide(&rule, Person::Member("zhangsan"), &facts),
            Verdict::ByUser
        );
        assert!(!by_user(&rule, Person::NonMember));
        assert_eq!(
            decide(&rule, Person::Member("lisi"), &facts),
            Verdict::Refused
        );
    }
}
