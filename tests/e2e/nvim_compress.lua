-- Headless Neovim: start promptls on the current buffer, ask for its "compress all XML blocks"
-- source action (resolving it when the server defers its edit), apply the edit as Neovim does,
-- and write the buffer's text to PROMPTLS_OUT.
-- Environment: PROMPTLS_CMD (JSON list: the server command), PROMPTLS_ROOT (workspace folder),
-- PROMPTLS_OUT (where to write the text). Prints `EDITS n`, then `RESULT PASS` or `RESULT FAIL`.
local function out(s) io.stdout:write(s .. '\n') end
local function fail(why)
  out('RESULT FAIL ' .. why)
  vim.cmd('cquit! 1')
end
local cmd = vim.json.decode(os.getenv('PROMPTLS_CMD'))
local root = os.getenv('PROMPTLS_ROOT')
local buf = vim.api.nvim_get_current_buf()
vim.bo[buf].filetype = 'markdown'
local client_id = vim.lsp.start({ name = 'promptls', cmd = cmd, root_dir = root }, { bufnr = buf })
local client = vim.lsp.get_client_by_id(client_id)
if not client then return fail('no client') end
local kind = 'source.compressXml.promptls'
local action
vim.wait(30000, function()
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    range = {
      start = { line = 0, character = 0 },
      ['end'] = { line = vim.api.nvim_buf_line_count(buf), character = 0 },
    },
    context = { diagnostics = {}, only = { kind } },
  }
  local response = client:request_sync('textDocument/codeAction', params, 5000, buf)
  for _, a in ipairs((response and response.result) or {}) do
    if a.kind == kind then
      action = a
      return true
    end
  end
  return false
end, 200)
if not action then return fail('no ' .. kind .. ' action') end
if not action.edit then
  local response = client:request_sync('codeAction/resolve', action, 10000, buf)
  action = response and response.result or {}
end
local edit = action.edit
if not edit then return fail('the action has no edit') end
local count = 0
for _, change in ipairs(edit.documentChanges or {}) do count = count + #change.edits end
for _, edits in pairs(edit.changes or {}) do count = count + #edits end
out('EDITS ' .. count)
vim.lsp.util.apply_workspace_edit(edit, client.offset_encoding)
local text = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n')
if vim.bo[buf].eol then text = text .. '\n' end
local f = assert(io.open(os.getenv('PROMPTLS_OUT'), 'w'))
f:write(text)
f:close()
out('RESULT PASS')
vim.lsp.stop_client(client_id)
vim.wait(3000, function() return vim.lsp.get_client_by_id(client_id) == nil end, 50)
vim.cmd('qall!')
