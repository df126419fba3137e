// Node-RED settings for bench/peers.py: flows from <userDir>/flows.json, editor and admin API
// off (httpAdminRoot: false), logging at warn, no telemetry. Port from NODE_RED_PORT.
module.exports = {
    uiHost: "127.0.0.1",
    uiPort: parseInt(process.env.NODE_RED_PORT || "1880", 10),
    flowFile: "flows.json",
    flowFilePretty: true,
    httpAdminRoot: false,
    httpNodeRoot: "/",
    disableEditor: true,
    credentialSecret: false,
    diagnostics: { enabled: false, ui: false },
    telemetry: { enabled: false },
    runtimeState: { enabled: false, ui: false },
    logging: { console: { level: "warn", metrics: false, audit: false } },
    externalModules: { autoInstall: false, palette: { allowInstall: false }, modules: { allowInstall: false } },
    editorTheme: { projects: { enabled: false } },
    functionExternalModules: false,
};
