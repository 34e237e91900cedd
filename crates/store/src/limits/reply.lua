-- Prepended to every limits script (see `RedisLimits::new`): how a script answers.
-- The reply is one string of the integers separated by spaces, not an array: the gateway decodes
-- one string far faster than many integer replies. %d prints each exactly (they are integral);
-- a script may put the string '1' instead of the number, which needs no formatting (Redis pays
-- for every number it formats).
local function reply(out)
  local format = string.format
  for i = 1, #out do
    local v = out[i]
    if v ~= '1' then out[i] = format('%d', v) end
  end
  return table.concat(out, ' ')
end
