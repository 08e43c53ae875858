//! The UI's words in English and Japanese, one table per language (a missing word is a
//! compile error, not a blank).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ja,
}

impl Lang {
    pub fn parse(text: &str) -> Option<Lang> {
        match text.to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "ja" => Some(Lang::Ja),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    pub fn text(self) -> &'static Text {
        match self {
            Lang::En => &EN,
            Lang::Ja => &JA,
        }
    }
}

pub struct Text {
    pub skip: &'static str,
    pub nav: &'static str,
    pub language: &'static str,
    pub overview: &'static str,
    pub error: &'static str,
    pub last_30_days: &'static str,
    pub deploy_frequency: &'static str,
    pub week: &'static str,
    pub lead_time: &'static str,
    pub change_failure: &'static str,
    pub restore: &'static str,
    pub automated_deploys: &'static str,
    pub open_incidents: &'static str,
    pub no_open_incidents: &'static str,
    pub state: &'static str,
    pub automation: &'static str,
    pub model: &'static str,
    pub opened: &'static str,
    pub models: &'static str,
    pub no_models: &'static str,
    pub versions: &'static str,
    pub serving: &'static str,
    pub aliases: &'static str,
    pub recent_alerts: &'static str,
    pub no_alerts: &'static str,
    pub runs: &'static str,
    pub filter: &'static str,
    pub search: &'static str,
    pub no_runs: &'static str,
    pub run: &'static str,
    pub stage: &'static str,
    pub started: &'static str,
    pub seconds: &'static str,
    pub by: &'static str,
    pub metrics: &'static str,
    pub pages: &'static str,
    pub page: &'static str,
    pub newer: &'static str,
    pub older: &'static str,
}

const EN: Text = Text {
    skip: "Skip to content",
    nav: "Main",
    language: "Language",
    overview: "Overview",
    error: "Something went wrong",
    last_30_days: "The last 30 days",
    deploy_frequency: "Deployment frequency",
    week: "week",
    lead_time: "Lead time (median)",
    change_failure: "Change failure rate",
    restore: "Time to restore (median)",
    automated_deploys: "Deploys by the loop",
    open_incidents: "Open incidents",
    no_open_incidents: "No open incidents.",
    state: "State",
    automation: "Automation",
    model: "Model",
    opened: "Opened",
    models: "Models and deployments",
    no_models: "No registered models yet: `kairo models register NAME --file model.onnx`.",
    versions: "Versions",
    serving: "Serving 100%",
    aliases: "Aliases",
    recent_alerts: "Recent alerts",
    no_alerts: "No alerts.",
    runs: "Runs",
    filter: "Filter (MLflow search syntax)",
    search: "Search",
    no_runs: "No runs match.",
    run: "Run",
    stage: "Stage or name",
    started: "Started",
    seconds: "Seconds",
    by: "By",
    metrics: "Metrics",
    pages: "Pages",
    page: "Page",
    newer: "Newer",
    older: "Older",
};

const JA: Text = Text {
    skip: "本文へ移動",
    nav: "メイン",
    language: "言語",
    overview: "概要",
    error: "エラーが発生しました",
    last_30_days: "直近30日",
    deploy_frequency: "デプロイ頻度",
    week: "週",
    lead_time: "リードタイム（中央値）",
    change_failure: "変更失敗率",
    restore: "復旧時間（中央値）",
    automated_deploys: "ループによるデプロイ",
    open_incidents: "対応中のインシデント",
    no_open_incidents: "対応中のインシデントはありません。",
    state: "状態",
    automation: "自動化",
    model: "モデル",
    opened: "発生",
    models: "モデルとデプロイ",
    no_models: "登録済みのモデルはまだありません：`kairo models register NAME --file model.onnx`",
    versions: "バージョン数",
    serving: "100% 配信中",
    aliases: "エイリアス",
    recent_alerts: "最近のアラート",
    no_alerts: "アラートはありません。",
    runs: "実行",
    filter: "フィルター（MLflow の検索構文）",
    search: "検索",
    no_runs: "該当する実行はありません。",
    run: "実行",
    stage: "ステージ／名前",
    started: "開始",
    seconds: "秒",
    by: "実行者",
    metrics: "メトリクス",
    pages: "ページ",
    page: "ページ",
    newer: "新しい",
    older: "古い",
};
