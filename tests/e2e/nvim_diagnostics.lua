-- Headless Neovim: start promptls on the current buffer, wait for its diagnostics, print them.
-- Environment: PROMPTLS_CMD (JSON list: the server command), PROMPTLS_ROOT (workspace folder),
-- PROMPTLS_EXPECT (how many diagnostics to wait for). Prints one `DIAG {json}` line each, then
-- `RESULT PASS` or `RESULT FAIL`; exits 0 or 1.
local function out(s) io.stdout:write(s .. '\n') end
local cmd = vim.json.decode(os.getenv('PROMPTLS_CMD'))
local root = os.getenv('PROMPTLS_ROOT')
local expect = tonumber(os.getenv('PROMPTLS_EXPECT') or '1')
local buf = vim.api.nvim_get_current_buf()
vim.bo[buf].filetype = 'markdown'
local client_id = vim.lsp.start({ name = 'promptls', cmd = cmd, root_dir = root }, { bufnr = buf })
out('CLIENT ' .. tostring(client_id))
local ok = vim.wait(30000, function() return #vim.diagnostic.get(buf) >= expect end, 50)
vim.wait(500)  -- let a late refresh settle
for _, d in ipairs(vim.diagnostic.get(buf)) do
  out('DIAG ' .. vim.json.encode({
    line = d.lnum, col = d.col, end_line = d.end_lnum, end_col = d.end_col,
    severity = d.severity, code = d.code, message = d.message, source = d.source,
  }))
end
local client = vim.lsp.get_client_by_id(client_id)
out('ENCODING ' .. tostring(client and client.offset_encoding))
out('RESULT ' .. (ok and 'PASS' or 'FAIL'))
vim.lsp.stop_client(client_id)
vim.wait(3000, function() return vim.lsp.get_client_by_id(client_id) == nil end, 50)
if ok then vim.cmd('qall!') else vim.cmd('cquit! 1') end
