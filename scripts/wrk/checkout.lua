-- Each request checks out a random order of 0..ORDERS-1 (ORDERS from the environment).
local orders = tonumber(os.getenv("ORDERS") or "100000")
request = function()
  return wrk.format("POST", "/orders/checkout/" .. math.random(0, orders - 1))
end
