-- Prepended to every limits script (see `RedisLimits::new`): how a script answers.
-- The reply is one string of the integers separated by spaces, not an array: the gateway decodes
-- one string far faster than many integer replies. %d prints each exactly (they are integral).
local function reply(out)
  for i = 1, #out do
    out[i] = string.format('%d', out[i])
  end
  return table.concat(out, ' ')
end
