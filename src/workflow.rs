//! The phase runner behind init, join and reset (kubeadm's `workflow.Runner`, absorbed):
//! a command is a list of phases declared once as data. The same list drives the run,
//! `--skip-phases` and a config file's `skipPhases` (validated against it), `phase <name>`
//! (the run filtered to one phase), the help text, the error context ("init stopped in
//! phase X") and the plan, which asks each phase what it would do.
//!
//! Phase names are kubeadm's: a phase with sub-phases is skipped whole by its own name
//! (`addon`) or in part by `parent/child` (`addon/kube-proxy`); `all` skips everything.

use anyhow::Context;

/// Which sub-phases of a phase run: every one, or the named ones only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    All,
    Only(Vec<String>),
}

impl Part {
    /// Whether sub-phase `child` is part of this run.
    pub fn has(&self, child: &str) -> bool {
        match self {
            Part::All => true,
            Part::Only(v) => v.iter().any(|c| c == child),
        }
    }
}

/// What a phase does with the command's data `D`.
pub type RunFn<D> = fn(&mut D, &Part) -> anyhow::Result<()>;
/// Whether a phase applies to this run at all (a control-plane phase on a worker).
pub type RunIfFn<D> = fn(&D) -> bool;
/// What a phase would do, one line each, without changing anything.
pub type PlanFn<D> = fn(&D, &Part) -> anyhow::Result<Vec<String>>;

/// One phase: a name, its help, its sub-phases and what it does.
pub struct Phase<D> {
    pub name: &'static str,
    pub help: &'static str,
    /// Sub-phase names (`addon` -> `coredns`, `kube-proxy`); the phase's `run` gets the
    /// ones that are not skipped.
    pub children: Vec<&'static str>,
    pub run: RunFn<D>,
    pub run_if: Option<RunIfFn<D>>,
    pub plan: PlanFn<D>,
}

impl<D> Phase<D> {
    pub fn new(name: &'static str, help: &'static str, run: RunFn<D>, plan: PlanFn<D>) -> Self {
        Phase {
            name,
            help,
            children: Vec::new(),
            run,
            run_if: None,
            plan,
        }
    }

    /// With sub-phases.
    pub fn children(mut self, children: Vec<&'static str>) -> Self {
        self.children = children;
        self
    }

    /// Runs only where `f` says so.
    pub fn run_if(mut self, f: RunIfFn<D>) -> Self {
        self.run_if = Some(f);
        self
    }
}

/// What happened to one phase in a run or a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Ran (or, in a plan, would run): the plan's lines.
    Ran(Vec<String>),
    /// Skipped by `--skip-phases` / `skipPhases`.
    Skipped,
    /// Does not apply to this run (its `run_if` said no).
    NotApplicable,
}

/// A command's phases in order.
pub struct Workflow<D> {
    /// `init`, `join`, `reset`: for messages.
    pub command: &'static str,
    pub phases: Vec<Phase<D>>,
}

/// The phases to skip, checked against the workflow's phase names.
#[derive(Debug, Clone, Default)]
pub struct Skips {
    names: Vec<String>,
}

impl Skips {
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl<D> Workflow<D> {
    /// Every phase name, sub-phases as `parent/child`, in order.
    pub fn names(&self) -> Vec<String> {
        let mut v = Vec::new();
        for p in &self.phases {
            v.push(p.name.to_string());
            v.extend(p.children.iter().map(|c| format!("{}/{c}", p.name)));
        }
        v
    }

    /// Checks skip names against the phases. `source` says where they were written
    /// (`--skip-phases`, or `FILE:LINE: skipPhases`) for the error.
    pub fn skips<'a>(
        &self,
        sources: impl IntoIterator<Item = (&'a str, &'a [String])>,
    ) -> anyhow::Result<Skips> {
        let known = self.names();
        let mut names = Vec::new();
        for (source, list) in sources {
            for n in list {
                let n = n.trim();
                if n.is_empty() {
                    continue;
                }
                let ok = n == "all"
                    || known.iter().any(|k| k == n)
                    || n.strip_suffix("/all")
                        .is_some_and(|p| self.phases.iter().any(|x| x.name == p));
                if !ok {
                    anyhow::bail!(
                        "{source}: {:?} is not a phase of {}; its phases are: {}",
                        n,
                        self.command,
                        known.join(", ")
                    );
                }
                names.push(n.trim_end_matches("/all").to_string());
            }
        }
        Ok(Skips { names })
    }

    /// The part of `phase` that runs with `skips`, or `None` when it is skipped whole.
    fn part(&self, phase: &Phase<D>, skips: &Skips) -> Option<Part> {
        let skipped = |n: &str| skips.names.iter().any(|s| s == n || s == "all");
        if skipped(phase.name) {
            return None;
        }
        let left: Vec<String> = phase
            .children
            .iter()
            .filter(|c| !skipped(&format!("{}/{c}", phase.name)))
            .map(|c| c.to_string())
            .collect();
        if phase.children.is_empty() || left.len() == phase.children.len() {
            Some(Part::All)
        } else if left.is_empty() {
            None
        } else {
            Some(Part::Only(left))
        }
    }

    /// Runs every phase in order that is neither skipped nor inapplicable; an error names
    /// the phase it stopped in. `on_skip` is told about each skipped phase.
    pub fn run(
        &self,
        data: &mut D,
        skips: &Skips,
        mut on_skip: impl FnMut(&str),
    ) -> anyhow::Result<()> {
        for phase in &self.phases {
            if phase.run_if.is_some_and(|f| !f(data)) {
                continue;
            }
            let Some(part) = self.part(phase, skips) else {
                on_skip(phase.name);
                continue;
            };
            (phase.run)(data, &part)
                .with_context(|| format!("{} stopped in phase {}", self.command, phase.name))?;
        }
        Ok(())
    }

    /// Runs one phase alone (`init phase addon`, `init phase addon kube-proxy`): `name` is
    /// a phase or `phase/child`.
    pub fn run_one(&self, data: &mut D, name: &str) -> anyhow::Result<()> {
        let (phase, part) = self.find(name)?;
        (phase.run)(data, &part)
            .with_context(|| format!("{} stopped in phase {}", self.command, name))
    }

    fn find(&self, name: &str) -> anyhow::Result<(&Phase<D>, Part)> {
        let (p, child) = match name.split_once('/') {
            Some((p, c)) if c != "all" => (p, Some(c)),
            Some((p, _)) => (p, None),
            None => (name, None),
        };
        let phase = self
            .phases
            .iter()
            .find(|x| x.name == p && child.is_none_or(|c| x.children.contains(&c)))
            .with_context(|| {
                format!(
                    "{:?} is not a phase of {}; its phases are: {}",
                    name,
                    self.command,
                    self.names().join(", ")
                )
            })?;
        let part = match child {
            Some(c) => Part::Only(vec![c.to_string()]),
            None => Part::All,
        };
        Ok((phase, part))
    }

    /// What each phase would do, in order, without changing anything: the phases' own
    /// answers, so a plan and the run that follows cannot drift apart.
    pub fn plan(&self, data: &D, skips: &Skips) -> anyhow::Result<Vec<(&'static str, Outcome)>> {
        let mut out = Vec::new();
        for phase in &self.phases {
            if phase.run_if.is_some_and(|f| !f(data)) {
                out.push((phase.name, Outcome::NotApplicable));
                continue;
            }
            let Some(part) = self.part(phase, skips) else {
                out.push((phase.name, Outcome::Skipped));
                continue;
            };
            let lines = (phase.plan)(data, &part)
                .with_context(|| format!("planning phase {} of {}", phase.name, self.command))?;
            out.push((phase.name, Outcome::Ran(lines)));
        }
        Ok(out)
    }

    /// The phase list for `--help`, kubeadm's layout.
    pub fn help(&self) -> String {
        let mut s = format!(
            "The \"{}\" command executes the following phases:\n",
            self.command
        );
        for p in &self.phases {
            s.push_str(&format!("{:<24}{}\n", p.name, p.help));
            for c in &p.children {
                s.push_str(&format!("  /{c}\n"));
            }
        }
        s
    }
}

/// A plan as text, `[phase] line` per line (`[phase] skipped` for skipped ones).
pub fn render_plan(plan: &[(&str, Outcome)]) -> String {
    let mut s = String::new();
    for (name, o) in plan {
        match o {
            Outcome::Ran(lines) => {
                for l in lines {
                    s.push_str(&format!("[{name}] {l}\n"));
                }
            }
            Outcome::Skipped => s.push_str(&format!("[{name}] skipped (--skip-phases)\n")),
            Outcome::NotApplicable => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Log {
        ran: Vec<String>,
        worker: bool,
    }

    fn rec(d: &mut Log, part: &Part) -> anyhow::Result<()> {
        d.ran.push(format!("{part:?}"));
        Ok(())
    }
    fn fail(_: &mut Log, _: &Part) -> anyhow::Result<()> {
        anyhow::bail!("boom")
    }
    fn plan(_: &Log, part: &Part) -> anyhow::Result<Vec<String>> {
        Ok(vec![format!("would {part:?}")])
    }

    fn wf(second: RunFn<Log>) -> Workflow<Log> {
        Workflow {
            command: "init",
            phases: vec![
                Phase::new("a", "first", rec, plan),
                Phase::new("addon", "addons", second, plan).children(vec!["coredns", "kube-proxy"]),
                Phase::new("cp", "control plane only", rec, plan).run_if(|d: &Log| !d.worker),
            ],
        }
    }

    #[test]
    fn skips_validate_and_select_sub_phases() {
        let w = wf(rec);
        let err = w
            .skips([("f.yaml:3: skipPhases", &["addon/kube-prox".to_string()][..])])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("f.yaml:3: skipPhases: \"addon/kube-prox\" is not a phase of init"),
            "{err}"
        );
        assert!(err.contains("addon/kube-proxy"), "{err}");
        let s = w
            .skips([("--skip-phases", &["addon/kube-proxy".to_string()][..])])
            .unwrap();
        let mut d = Log::default();
        let mut skipped = Vec::new();
        w.run(&mut d, &s, |p| skipped.push(p.to_string())).unwrap();
        assert_eq!(d.ran, vec!["All", "Only([\"coredns\"])", "All"]);
        assert!(skipped.is_empty());
        // Both children skipped: the phase is skipped; `addon/all` is `addon`.
        for list in [vec!["addon/coredns", "addon/kube-proxy"], vec!["addon/all"]] {
            let list: Vec<String> = list.into_iter().map(String::from).collect();
            let s = w.skips([("--skip-phases", &list[..])]).unwrap();
            let mut d = Log::default();
            let mut skipped = Vec::new();
            w.run(&mut d, &s, |p| skipped.push(p.to_string())).unwrap();
            assert_eq!(d.ran.len(), 2);
            assert_eq!(skipped, vec!["addon"]);
        }
    }

    #[test]
    fn errors_name_the_phase_and_run_if_applies() {
        let w = wf(fail);
        let mut d = Log {
            worker: true,
            ..Default::default()
        };
        let err = w.run(&mut d, &Skips::default(), |_| {}).unwrap_err();
        assert_eq!(err.to_string(), "init stopped in phase addon");
        assert_eq!(format!("{err:#}"), "init stopped in phase addon: boom");
        let w = wf(rec);
        let mut d = Log {
            worker: true,
            ..Default::default()
        };
        w.run(&mut d, &Skips::default(), |_| {}).unwrap();
        assert_eq!(d.ran.len(), 2, "cp does not apply to a worker");
        let plan = w.plan(&d, &Skips::default()).unwrap();
        assert_eq!(plan[2], ("cp", Outcome::NotApplicable));
        assert_eq!(render_plan(&plan), "[a] would All\n[addon] would All\n");
    }

    #[test]
    fn run_one_takes_a_phase_or_a_sub_phase() {
        let w = wf(rec);
        let mut d = Log::default();
        w.run_one(&mut d, "addon/kube-proxy").unwrap();
        w.run_one(&mut d, "addon").unwrap();
        w.run_one(&mut d, "addon/all").unwrap();
        assert_eq!(d.ran, vec!["Only([\"kube-proxy\"])", "All", "All"]);
        let err = w.run_one(&mut d, "addon/dns").unwrap_err().to_string();
        assert!(err.contains("is not a phase of init"), "{err}");
        assert!(
            w.help()
                .contains("addon                   addons\n  /coredns\n"),
            "{}",
            w.help()
        );
    }
}
